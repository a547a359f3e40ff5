"""Compare two images: side by side in a PNG, or an HTML before/after slider, with PSNR/SSIM against a
reference when one is given."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RestoreKitError
from .draw import font
from .html import page

__all__ = ["compare_images", "Comparison"]


@dataclass
class Comparison:
    path: Path
    labels: tuple[str, str]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> {"psnr", "ssim"}

    def summary(self) -> str:
        lines = [f"wrote {self.path}"]
        for label, m in self.metrics.items():
            lines.append(f"{label}: PSNR {m['psnr']:.3f} dB, SSIM {m['ssim']:.4f} (against the reference)")
        return "\n".join(lines)


def _load(image: Any, what: str) -> tuple[np.ndarray, str]:
    from ..io import read_image, to_numpy_image

    if isinstance(image, (str, Path)):
        return read_image(image).pixels, Path(image).name
    pixels, _ = to_numpy_image(image)
    return pixels, what


def _same_channels(*images: np.ndarray) -> list[np.ndarray]:
    if all(im.shape[2] == 1 for im in images):
        return list(images)
    return [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in images]


def _png_bytes(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    a = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).save(buf, format="PNG")
    return buf.getvalue()


def _label(pixels: np.ndarray, text: str) -> np.ndarray:
    """``text`` on a dark box in the top-left corner, keeping the image's size."""
    from PIL import Image, ImageDraw

    a = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a).convert("RGBA")
    overlay = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    face = font(max(9, min(16, im.size[0] // 24)))
    box = draw.textbbox((4, 3), text, font=face)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0, 150))
    draw.text((4, 3), text, font=face, fill=(255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(im, overlay).convert("RGB")).astype(np.float32) / 255.0


def compare_images(a: Any, b: Any, *, ref: Any = None, out: str | Path, labels: tuple[str, str] | None = None,
                   overwrite: bool = True) -> Comparison:
    """Write ``out``: a PNG with ``a`` and ``b`` side by side (exactly their widths together, labels drawn
    inside), or, when ``out`` ends with ``.html``, a self-contained before/after slider. Images are paths,
    arrays, tensors or PIL images of the same size; ``ref`` adds PSNR/SSIM of each against it."""
    from ..io.files import atomic_write, atomic_write_text
    from ..metrics import psnr, ssim

    out = Path(out)
    if out.suffix.lower() not in (".png", ".html", ".htm"):
        raise RestoreKitError(f"{out}: write the comparison as .png or .html")
    if out.exists() and not overwrite:
        raise RestoreKitError(f"{out}: exists", hint="overwrite=True replaces it", cli_hint="pass --overwrite to replace it")
    pa, na = _load(a, "A")
    pb, nb = _load(b, "B")
    names = labels or (na, nb if nb != na else f"{nb} (2)")
    if pa.shape[:2] != pb.shape[:2]:
        raise RestoreKitError(f"cannot compare images of different sizes: {pa.shape[1]}×{pa.shape[0]} and "
                              f"{pb.shape[1]}×{pb.shape[0]}")
    metrics: dict[str, dict[str, float]] = {}
    if ref is not None:
        pr, _ = _load(ref, "reference")
        if pr.shape[:2] != pa.shape[:2]:
            raise RestoreKitError(f"the reference is {pr.shape[1]}×{pr.shape[0]}, the images {pa.shape[1]}×{pa.shape[0]}")
        pa, pb, pr = _same_channels(pa, pb, pr)
        for name, img in zip(names, (pa, pb)):
            metrics[name] = {"psnr": float(psnr(img, pr)), "ssim": float(ssim(img, pr))}
    else:
        pa, pb = _same_channels(pa, pb)

    def caption(name: str) -> str:
        m = metrics.get(name)
        return name if m is None else f"{name}  {m['psnr']:.2f} dB / {m['ssim']:.4f}"

    if out.suffix.lower() == ".png":
        side = np.concatenate([_label(pa, caption(names[0])), _label(pb, caption(names[1]))], axis=1)
        data = _png_bytes(side)
        atomic_write(out, lambda p: Path(p).write_bytes(data))
    else:
        atomic_write_text(out, _slider_html(pa, pb, (names[0], names[1]), metrics))
    return Comparison(out, (names[0], names[1]), metrics)


def _slider_html(a: np.ndarray, b: np.ndarray, names: tuple[str, str], metrics: dict[str, dict[str, float]]) -> str:
    h, w = a.shape[:2]
    # Small images are enlarged by a whole factor (pixelated) so that the slider is usable.
    zoom = max(1, min(8, 640 // w)) if w < 480 else 1
    dw, dh = w * zoom, h * zoom
    ua = "data:image/png;base64," + base64.b64encode(_png_bytes(a)).decode("ascii")
    ub = "data:image/png;base64," + base64.b64encode(_png_bytes(b)).decode("ascii")
    # Without JS the range input does nothing, but both halves still show (the split stays at 50 %).
    css = f"""
.cmp {{ position: relative; width: {dw}px; max-width: 100%; line-height: 0; }}
.cmp img {{ display: block; width: 100%; height: auto; image-rendering: pixelated; }}
.cmp .top {{ position: absolute; top: 0; left: 0; clip-path: inset(0 50% 0 0); }}
.cmp .bar {{ position: absolute; top: 0; bottom: 0; left: 50%; width: 2px; margin-left: -1px; background: #fff;
  box-shadow: 0 0 3px #000; }}
.labels {{ display: flex; justify-content: space-between; width: {dw}px; max-width: 100%; font-weight: 600; margin: 4px 0; }}
#pos {{ width: {dw}px; max-width: 100%; margin: 10px 0; }}
"""
    rows = "".join(f"<tr><td>{escape(n)}</td><td class=num>{m['psnr']:.3f}</td><td class=num>{m['ssim']:.4f}</td></tr>"
                   for n, m in metrics.items())
    table = (f"<table><thead><tr><th>image</th><th class=num>PSNR (dB)</th><th class=num>SSIM</th></tr></thead>"
             f"<tbody>{rows}</tbody></table><p class=meta>against the reference image</p>") if metrics else ""
    body = f"""<h1>{escape(names[0])} vs {escape(names[1])}</h1>
<p class="meta">{w}×{h}{f", shown ×{zoom}" if zoom > 1 else ""}. Drag the slider: left of the line is
{escape(names[0])}, right of it {escape(names[1])}.</p>
<div class="labels"><span>◀ {escape(names[0])}</span><span>{escape(names[1])} ▶</span></div>
<div class="cmp">
<img class="bottom" src="{ub}" alt="{escape(names[1])}" width="{dw}" height="{dh}">
<img class="top" id="top" src="{ua}" alt="{escape(names[0])}" width="{dw}" height="{dh}">
<div class="bar" id="bar"></div>
</div>
<input type="range" id="pos" min="0" max="100" value="50" step="0.1" aria-label="split position">
{table}
<script>
(function () {{
  var pos = document.getElementById("pos"), top = document.getElementById("top"), bar = document.getElementById("bar");
  function update() {{ var v = pos.value; top.style.clipPath = "inset(0 " + (100 - v) + "% 0 0)"; bar.style.left = v + "%"; }}
  pos.addEventListener("input", update); update();
}})();
</script>"""
    return page(f"{names[0]} vs {names[1]}", body, extra_css=css)
