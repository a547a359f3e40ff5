"""Side-by-side zoomed crops where models differ most, drawn from the crops the benchmark stored
(:mod:`restorekit.eval.crops` chose the image and window and restored them): the context, the input,
each model and the ground truth, zoomed (nearest neighbour) and labelled, in one strip per (set, σ)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..eval.results import BenchmarkResults
from ..io import read_image, write_image
from .draw import font, rgb8
from .tables import group_title

__all__ = ["zoom_nearest", "tile_strip", "draw_crops", "group_slug", "ZOOM_TO"]

ZOOM_TO = 192  # zoomed tile side in pixels


def zoom_nearest(img: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def tile_strip(tiles: list[tuple[str, str, np.ndarray]], *, pad: int = 6) -> np.ndarray:
    """Tiles (title, subtitle, H×W×C image) in a row, each captioned underneath, on a white ground."""
    from PIL import Image, ImageDraw

    face = font()
    cap = 34
    h = max(t[2].shape[0] for t in tiles)
    width = sum(t[2].shape[1] for t in tiles) + pad * (len(tiles) + 1)
    canvas = Image.new("RGB", (width, h + cap + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for title, subtitle, img in tiles:
        canvas.paste(Image.fromarray(rgb8(img)), (x, pad))
        tw = img.shape[1]
        for k, (text, colour) in enumerate(((title, "black"), (subtitle, "#555"))):
            while text and draw.textlength(text, font=face) > tw:
                text = text[:-2] + "…"
            draw.text((x, pad + h + 3 + 15 * k), text, fill=colour, font=face)
        x += tw + pad
    return np.asarray(canvas)


def _context(context: np.ndarray, size: tuple[int, int], window: tuple[int, int, int], height: int) -> np.ndarray:
    """The whole image (``context``, possibly stored smaller than its ``size``) scaled to ``height``,
    with the crop window outlined in red."""
    from PIL import Image, ImageDraw

    y, x, s = window
    h = size[0]
    ch, cw = context.shape[:2]
    im = Image.fromarray(rgb8(context))
    if ch != height:
        im = im.resize((max(1, round(cw * height / ch)), height), Image.Resampling.BILINEAR)
    scale = height / h
    ImageDraw.Draw(im).rectangle([x * scale, y * scale, (x + s) * scale - 1, (y + s) * scale - 1], outline=(230, 0, 0), width=2)
    return np.asarray(im)


def group_slug(set_name: str, sigma: float | None) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in set_name)
    return safe + ("" if sigma is None else f"-s{sigma:g}")


def _subtitle(tile: dict[str, Any]) -> str:
    psnr = tile.get("crop_psnr")
    if psnr is None:
        return ""
    return f"{psnr:.2f} dB" + (" (crop)" if tile.get("role") == "model" else "")


def _strip(out_dir: Path, crop: dict[str, Any]) -> tuple[np.ndarray, int]:
    w = crop["window"]
    s = int(w["size"])
    factor = max(1, ZOOM_TO // s)
    context = read_image(out_dir / crop["context"]).pixels
    tiles = [("context", str(crop["image"]), _context(context, tuple(crop["size"]), (w["y"], w["x"], s), s * factor))]
    for t in crop["tiles"]:
        tiles.append((t["label"], _subtitle(t), zoom_nearest(read_image(out_dir / t["file"]).pixels, factor)))
    return tile_strip(tiles), factor


def draw_crops(results: BenchmarkResults) -> tuple[list[dict[str, Any]], list[str]]:
    """One labelled strip per crop of ``results.crops``, as ``out_dir/images/crops-<set>-s<σ>.png``.
    Returns what to show (each crop's metadata with its strip, ``png``, and ``zoom``) and notes on the
    crops that could not be drawn."""
    out_dir = results.out_dir
    shown: list[dict[str, Any]] = []
    notes: list[str] = []
    for crop in results.crops:
        title = group_title(crop["set"], crop["sigma"])
        if "context" not in crop:
            # A folder written when the report restored the crops itself: its strip as drawn then.
            if "png" in crop and (out_dir / crop["png"]).is_file():
                shown.append({**crop, "zoom": crop.get("window", {}).get("zoom")})
            else:
                notes.append(f"{title}: crops not shown (no stored crops; run the benchmark again)")
            continue
        missing = [f for f in [crop["context"]] + [t["file"] for t in crop["tiles"]] if not (out_dir / f).is_file()]
        if missing:
            notes.append(f"{title}: crops not shown ({missing[0]} is missing; run the benchmark again)")
            continue
        strip, factor = _strip(out_dir, crop)
        png = (Path("images") / f"crops-{group_slug(crop['set'], crop['sigma'])}.png").as_posix()
        write_image(out_dir / png, strip, overwrite=True)
        shown.append({**crop, "png": png, "zoom": factor})
    return shown, notes
