"""Compare two images: side by side in a PNG, or an HTML before/after slider; a reference, when given, is
shown too (a third panel) with the PSNR/SSIM of both images against it."""

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
    # PNG only: each panel's caption and (x, y, width, height) in the image, left to right
    panels: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)

    def summary(self) -> str:
        shown = f" ({len(self.panels)} panels: {' | '.join(t for t, _ in self.panels)})" if self.panels else ""
        lines = [f"wrote {self.path}{shown}"]
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


def _panels(images: list[tuple[str, str, np.ndarray]], *, pad: int = 8) -> tuple[np.ndarray,
                                                                              list[tuple[int, int, int, int]]]:
    """(title, subtitle, image) panels in a row on a white ground, captioned above so that each panel
    shows the image's own pixels; a column is as wide as its image or its caption. Returns the canvas
    and each panel's (x, y, width, height)."""
    from PIL import Image, ImageDraw

    from .draw import rgb8

    face = font(13)
    line = 17
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = [max(im.shape[1], *(int(measure.textlength(t, font=face)) + 1 for t in (title, sub)))
              for title, sub, im in images]
    top = pad + 2 * line + 4
    height = max(im.shape[0] for *_, im in images)
    canvas = Image.new("RGB", (sum(widths) + pad * (len(images) + 1), top + height + pad), "white")
    draw = ImageDraw.Draw(canvas)
    boxes = []
    x = pad
    for (title, sub, im), w in zip(images, widths):
        draw.text((x, pad), title, fill="black", font=face)
        draw.text((x, pad + line), sub, fill="#555", font=face)
        canvas.paste(Image.fromarray(rgb8(im)), (x, top))
        boxes.append((x, top, im.shape[1], im.shape[0]))
        x += w + pad
    return np.asarray(canvas).astype(np.float32) / 255.0, boxes


def compare_images(a: Any, b: Any, *, ref: Any = None, out: str | Path, labels: tuple[str, str] | None = None,
                   overwrite: bool = True) -> Comparison:
    """Write ``out``: a PNG with ``a`` and ``b`` side by side, captioned above (each panel is the image's
    own pixels), or, when ``out`` ends with ``.html``, a self-contained before/after slider. Images are
    paths, arrays, tensors or PIL images of the same size; ``ref`` adds a third panel (in the slider: the
    reference below, and a switch to slide ``a`` against it) and PSNR/SSIM of each against it."""
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
    pr: np.ndarray | None = None
    ref_name = "reference"
    if ref is not None:
        pr, ref_file = _load(ref, "reference")
        ref_name = "reference" if ref_file == "reference" else f"reference: {ref_file}"
        if pr.shape[:2] != pa.shape[:2]:
            raise RestoreKitError(f"the reference is {pr.shape[1]}×{pr.shape[0]}, the images {pa.shape[1]}×{pa.shape[0]}")
        pa, pb, pr = _same_channels(pa, pb, pr)
        for name, img in zip(names, (pa, pb)):
            metrics[name] = {"psnr": float(psnr(img, pr)), "ssim": float(ssim(img, pr))}
    else:
        pa, pb = _same_channels(pa, pb)

    def caption(name: str) -> str:
        m = metrics.get(name)
        return "" if m is None else f"PSNR {m['psnr']:.2f} dB · SSIM {m['ssim']:.4f}"

    boxes: list[tuple[str, tuple[int, int, int, int]]] = []
    if out.suffix.lower() == ".png":
        shown = [(names[0], caption(names[0]), pa), (names[1], caption(names[1]), pb)]
        if pr is not None:
            shown.append((ref_name, "ground truth", pr))
        side, where = _panels(shown)
        boxes = [(title, box) for (title, _, _), box in zip(shown, where)]
        data = _png_bytes(side)
        atomic_write(out, lambda p: Path(p).write_bytes(data))
    else:
        atomic_write_text(out, _slider_html(pa, pb, (names[0], names[1]), metrics,
                                            reference=None if pr is None else (ref_name, pr)))
    return Comparison(out, (names[0], names[1]), metrics, boxes)


def _slider_html(a: np.ndarray, b: np.ndarray, names: tuple[str, str], metrics: dict[str, dict[str, float]], *,
                 reference: tuple[str, np.ndarray] | None = None) -> str:
    h, w = a.shape[:2]
    # Small images are enlarged by a whole factor (pixelated) so that the slider is usable.
    zoom = max(1, min(8, 640 // w)) if w < 480 else 1
    dw, dh = w * zoom, h * zoom

    def uri(pixels: np.ndarray) -> str:
        return "data:image/png;base64," + base64.b64encode(_png_bytes(pixels)).decode("ascii")

    ua, ub = uri(a), uri(b)
    # Without JS the range input does nothing, but both halves still show (the split stays at 50 %).
    css = f"""
.cmp {{ position: relative; width: {dw}px; max-width: 100%; line-height: 0; }}
.cmp img {{ display: block; width: 100%; height: auto; image-rendering: pixelated; }}
.cmp .top {{ position: absolute; top: 0; left: 0; clip-path: inset(0 50% 0 0); }}
.cmp .bar {{ position: absolute; top: 0; bottom: 0; left: 50%; width: 2px; margin-left: -1px; background: #fff;
  box-shadow: 0 0 3px #000; }}
.labels {{ display: flex; justify-content: space-between; width: {dw}px; max-width: 100%; font-weight: 600; margin: 4px 0; }}
#pos {{ width: {dw}px; max-width: 100%; margin: 10px 0; }}
figure.ref img {{ width: {dw}px; max-width: 100%; height: auto; }}
fieldset.right {{ border: 0; padding: 0; margin: 6px 0; }}
"""
    rows = "".join(f"<tr><td>{escape(n)}</td><td class=num>{m['psnr']:.3f}</td><td class=num>{m['ssim']:.4f}</td></tr>"
                   for n, m in metrics.items())
    table = (f'<div class="scroll"><table><thead><tr><th>image</th><th class=num>PSNR (dB)</th><th class=num>SSIM</th>'
             f"</tr></thead><tbody>{rows}</tbody></table></div><p class=meta>against the reference image</p>"
             ) if metrics else ""
    switch = ref_figure = ""
    if reference is not None:
        ref_name, pr = reference
        # The right side of the slider can show the reference instead of B: A against the ground truth.
        switch = f"""<fieldset class="right"><legend>right of the line:</legend>
<label><input type="radio" name="right" value="b" checked> {escape(names[1])}</label>
<label><input type="radio" name="right" value="ref"> {escape(ref_name)}</label></fieldset>"""
        ref_figure = (f'<figure class="ref"><img id="ref" src="{uri(pr)}" alt="{escape(ref_name)}" width="{dw}" '
                      f'height="{dh}"><figcaption>{escape(ref_name)}</figcaption></figure>')
    body = f"""<h1>{escape(names[0])} vs {escape(names[1])}</h1>
<p class="meta">{w}×{h}{f", shown ×{zoom}" if zoom > 1 else ""}. Drag the slider: left of the line is
{escape(names[0])}, right of it {escape(names[1])}{" (or the reference, switched below)" if reference else ""}.</p>
<div class="labels"><span>◀ {escape(names[0])}</span><span id="right-label">{escape(names[1])} ▶</span></div>
<div class="cmp">
<img class="bottom" id="bottom" src="{ub}" alt="{escape(names[1])}" width="{dw}" height="{dh}">
<img class="top" id="top" src="{ua}" alt="{escape(names[0])}" width="{dw}" height="{dh}">
<div class="bar" id="bar"></div>
</div>
<input type="range" id="pos" min="0" max="100" value="50" step="0.1" aria-label="split position">
{switch}
{table}
{ref_figure}
<script>
(function () {{
  var pos = document.getElementById("pos"), top = document.getElementById("top"), bar = document.getElementById("bar");
  function update() {{ var v = pos.value; top.style.clipPath = "inset(0 " + (100 - v) + "% 0 0)"; bar.style.left = v + "%"; }}
  pos.addEventListener("input", update); update();
  var bottom = document.getElementById("bottom"), ref = document.getElementById("ref"),
      label = document.getElementById("right-label"), bSrc = bottom.src, bAlt = bottom.alt;
  Array.prototype.forEach.call(document.querySelectorAll('input[name="right"]'), function (r) {{
    r.addEventListener("change", function () {{
      var toRef = r.value === "ref" && r.checked;
      bottom.src = toRef ? ref.src : bSrc; bottom.alt = toRef ? ref.alt : bAlt; label.textContent = bottom.alt + " \u25b6";
    }});
  }});
}})();
</script>"""
    return page(f"{names[0]} vs {names[1]}", body, extra_css=css)
