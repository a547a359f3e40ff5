"""Side-by-side zoomed crops where models differ most: pick the image with the largest PSNR spread
between models, the window with the largest local spread, zoom it (nearest neighbour) and label tiles."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..eval.benchmark import BenchmarkResults

__all__ = ["pick_image", "pick_window", "zoom_nearest", "tile_strip", "make_crops", "group_slug"]

CROP = 48
ZOOM_TO = 192  # zoomed tile side in pixels
CROPS_VERSION = 1  # bump when the drawing changes: cached strips are redrawn


def pick_image(per_model: dict[str, dict[str, float]]) -> str | None:
    """The image name whose PSNR varies most between models (one model: its worst image)."""
    names = set.intersection(*(set(v) for v in per_model.values())) if per_model else set()
    if not names:
        return None
    if len(per_model) == 1:
        (scores,) = per_model.values()
        return min(sorted(names), key=lambda n: scores[n])
    return max(sorted(names), key=lambda n: max(v[n] for v in per_model.values()) - min(v[n] for v in per_model.values()))


def _local_psnr(out: np.ndarray, target: np.ndarray, size: int, stride: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    err = torch.from_numpy(((out.astype(np.float64) - target) ** 2).mean(axis=2))[None, None]
    mse = F.avg_pool2d(err, size, stride=stride)[0, 0].numpy()
    return -10.0 * np.log10(mse + 1e-10)


def pick_window(outputs: list[np.ndarray], target: np.ndarray, size: int = CROP) -> tuple[int, int, int]:
    """(y, x, side) of the square window where the models' local PSNR differs most (one model: its
    worst window). Images are H×W×C floats."""
    h, w = target.shape[:2]
    size = max(1, min(size, h, w))
    stride = max(1, size // 4)
    maps = np.stack([_local_psnr(o, target, size, stride) for o in outputs])
    score = maps.max(0) - maps.min(0) if len(outputs) > 1 else -maps[0]
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(i * stride), int(j * stride), size


def zoom_nearest(img: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def _rgb8(img: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 from float [0, 1] or uint8 pixels, gray or colour."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _font(size: int = 13) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def tile_strip(tiles: list[tuple[str, str, np.ndarray]], *, pad: int = 6) -> np.ndarray:
    """Tiles (title, subtitle, H×W×C image) in a row, each captioned underneath, on a white ground."""
    from PIL import Image, ImageDraw

    font = _font()
    cap = 34
    h = max(t[2].shape[0] for t in tiles)
    width = sum(t[2].shape[1] for t in tiles) + pad * (len(tiles) + 1)
    canvas = Image.new("RGB", (width, h + cap + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for title, subtitle, img in tiles:
        canvas.paste(Image.fromarray(_rgb8(img)), (x, pad))
        tw = img.shape[1]
        for k, (text, colour) in enumerate(((title, "black"), (subtitle, "#555"))):
            while text and draw.textlength(text, font=font) > tw:
                text = text[:-2] + "…"
            draw.text((x, pad + h + 3 + 15 * k), text, fill=colour, font=font)
        x += tw + pad
    return np.asarray(canvas)


def _context(target: np.ndarray, window: tuple[int, int, int], height: int) -> np.ndarray:
    """The whole image scaled to ``height`` with the crop window outlined in red."""
    from PIL import Image, ImageDraw

    y, x, s = window
    h, w = target.shape[:2]
    scale = height / h
    im = Image.fromarray(_rgb8(target)).resize((max(1, round(w * scale)), height), Image.Resampling.BILINEAR)
    ImageDraw.Draw(im).rectangle([x * scale, y * scale, (x + s) * scale - 1, (y + s) * scale - 1], outline=(230, 0, 0), width=2)
    return np.asarray(im)


def group_slug(set_name: str, sigma: float | None) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in set_name)
    return safe + ("" if sigma is None else f"-s{sigma:g}")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def make_crops(results: "BenchmarkResults", *, options: Any = None, progress: bool = False) -> list[dict[str, Any]]:
    """One labelled crop strip per (set, σ) under ``out_dir/images``; cached in ``out_dir/crops`` by the
    cells they show, so models are re-run (on one image per group) only when something changed."""
    from ..io.files import atomic_write_text

    out_dir = results.out_dir
    plans = []
    for set_name, sigma in results.groups():
        cells = results.cells_of(set_name, sigma)
        per_model = {c.model: {r["name"]: r["psnr"] for r in c.images} for c in cells}
        name = pick_image(per_model)
        if name is None:
            continue
        ident = json.dumps([CROPS_VERSION, sorted((c.model, c.key) for c in cells), name, CROP, ZOOM_TO], sort_keys=True)
        key = hashlib.sha256(ident.encode()).hexdigest()[:20]
        png = Path("images") / f"crops-{group_slug(set_name, sigma)}.png"
        meta_path = out_dir / "crops" / f"{key}.json"
        if meta_path.is_file() and (out_dir / png).is_file():
            try:
                plans.append(json.loads(meta_path.read_text(encoding="utf-8")))
                continue
            except ValueError:
                pass
        plans.append({"key": key, "set": set_name, "sigma": sigma, "image": name, "png": png.as_posix(),
                      "models": [c.model for c in cells], "protocol": cells[0].protocol, "todo": True})
    todo = [p for p in plans if p.get("todo")]
    if todo:
        _render(results, todo, options, progress)
        for p in todo:
            p.pop("todo")
            atomic_write_text(out_dir / "crops" / f"{p['key']}.json", json.dumps(p, indent=1) + "\n")
    return [p for p in plans if (out_dir / p["png"]).is_file()]


def _render(results: "BenchmarkResults", plans: list[dict[str, Any]], options: Any, progress: bool) -> None:
    """Restore each plan's image with each of its models (each model loaded once), then draw the strips."""
    from tqdm import tqdm

    from ..eval.datasets import dataset_samples
    from ..eval.evaluate import load_pair
    from ..inference import InferenceOptions, restore_tensor
    from ..io import tensor_to_image, write_image
    from ..pretrained import load_weights

    options = options or InferenceOptions()
    seed = int(results.settings.get("seed", 0))
    clip = bool(results.settings.get("clip_noise", False))
    sets = {s.name: s for s in results.sets}
    inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for p in plans:
        # Same draw as the evaluation's first repeat: noise seeded by the image's name.
        _, samples = dataset_samples(sets[p["set"]].path, paired=False if p["sigma"] is not None else None)
        sample = next(s for s in samples if s.name == p["image"])
        channels = results.model(p["models"][0]).channels
        inputs[p["key"]] = load_pair(sample, channels, sigma=p["sigma"], seed=seed, clip_noise=clip)
    outputs: dict[tuple[str, str], np.ndarray] = {}
    labels = [m.label for m in results.models if any(m.label in p["models"] for p in plans)]
    for label in tqdm(labels, desc="crops", unit="model", disable=not progress, leave=False):
        model = load_weights(results.model(label).path)
        for p in plans:
            if label in p["models"]:
                outputs[(p["key"], label)] = tensor_to_image(restore_tensor(model, inputs[p["key"]][0], options))
        del model
    for p in plans:
        degraded_t, clean_t = inputs[p["key"]]
        degraded, clean = tensor_to_image(degraded_t), tensor_to_image(clean_t)
        outs = [outputs[(p["key"], m)] for m in p["models"]]
        if any(o.shape != clean.shape for o in outs) or degraded.shape != clean.shape:
            continue  # e.g. super-resolution: input and output sizes differ; no side-by-side crops
        y, x, s = pick_window(outs, clean)
        factor = max(1, ZOOM_TO // s)

        def crop(img: np.ndarray) -> np.ndarray:
            return zoom_nearest(img[y:y + s, x:x + s], factor)

        tiles = [("context", f"{p['image']}", _context(clean, (y, x, s), s * factor)),
                 ("input", f"{_psnr(degraded[y:y + s, x:x + s], clean[y:y + s, x:x + s]):.2f} dB", crop(degraded))]
        p["tiles"] = [{"label": "input", "crop_psnr": _psnr(degraded[y:y + s, x:x + s], clean[y:y + s, x:x + s])}]
        for m, out in zip(p["models"], outs):
            cp = _psnr(out[y:y + s, x:x + s], clean[y:y + s, x:x + s])
            tiles.append((m, f"{cp:.2f} dB (crop)", crop(out)))
            p["tiles"].append({"label": m, "crop_psnr": cp})
        tiles.append(("ground truth", "", crop(clean)))
        p["window"] = {"y": y, "x": x, "size": s, "zoom": factor}
        write_image(results.out_dir / p["png"], tile_strip(tiles), overwrite=True)
