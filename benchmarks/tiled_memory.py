"""Tiled restoration of a large colour image: peak memory and time per tile size, and what tiling
changes in the result.

1. A 4000×3000 noisy colour image (a CBSD68 image upscaled, σ25 noise; synthetic without ../shared)
   is restored with each --tiles size, each in its own subprocess, reporting the peak resident set
   (VmHWM of /proc/self/status, reset after the image and model are built) and the time. With
   --untiled the whole image also goes through in one piece (needs many GB).
2. On a 1024×1024 crop, tiled (--crop-tile) vs whole-image: PSNR against the clean crop for both,
   and the largest absolute difference in the tile-border bands (within one overlap of an interior
   tile edge) vs elsewhere.

The model is --model: a built-in name (default-color), a checkpoint file, or a registered name
(cdncnn-b-folded, the default, with the official GD_Color_Blind.mat weights when ../shared has them;
other names run with random weights).

    PYTHONPATH=src python benchmarks/tiled_memory.py [--model cdncnn-b-folded] [--size 3000 4000]
        [--tiles 256 512 1024] [--untiled] [--precision fp32] [--crop 1024] [--crop-tile 512] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from restorekit.eval.speed import proc_status_kb, reset_peak_rss
from restorekit.inference import (
    InferenceOptions,
    model_spec,
    plan_tiles,
    receptive_radius,
    restore_tensor,
)
from restorekit.models import create_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CBSD68 = SHARED / "data" / "denoise" / "CBSD68"
OFFICIAL = {"cdncnn-b-folded": SHARED / "weights" / "dncnn-matconvnet" / "GD_Color_Blind.mat"}


def load_model(name: str) -> tuple[torch.nn.Module, str]:
    from restorekit.pretrained import BUILTIN, load_weights

    if name in BUILTIN:
        return load_weights(name), f"built-in weights {name}"
    if Path(name).is_file():  # a checkpoint: restorekit's own or an official file
        return load_weights(name), f"weights {Path(name).name}"
    path = OFFICIAL.get(name)
    if path is not None and path.is_file():
        return load_weights(path), f"official weights {path.name}"
    torch.manual_seed(0)
    return create_model(name), "random weights"


def make_image(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(clean, noisy σ25) 1×3×H×W; from the first CBSD68 image upscaled when available."""
    files = sorted(CBSD68.glob("*.png")) if CBSD68.is_dir() else []
    if files:
        from restorekit.io import image_to_tensor, read_image

        small = image_to_tensor(read_image(files[0], channels=3).pixels)
        clean = F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False).clamp_(0, 1)
        source = f"{files[0].name} upscaled"
    else:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
        clean = torch.stack([0.5 + 0.4 * torch.sin(40 * xx * yy), xx, yy])[None]
        source = "synthetic"
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    return clean, clean + noise.mul_(25 / 255), source


def child(args: argparse.Namespace) -> None:
    """One configuration: restore and print one JSON line."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model, weights = load_model(args.model)
    clean, noisy, source = make_image(*args.size)
    del clean
    tile = None if args.tile == 0 else args.tile
    options = InferenceOptions(tile=tile, precision=args.precision, device="cpu")
    if tile is not None:
        receptive_radius(model)  # measured once; not part of the restoration's memory or time
    reset = reset_peak_rss()  # first: it also returns freed heap to the system, lowering the RSS
    base = proc_status_kb("VmRSS") or 0
    t0 = time.perf_counter()
    out = restore_tensor(model, noisy, options)
    seconds = time.perf_counter() - t0
    peak = proc_status_kb("VmHWM") or 0
    print(json.dumps({"tile": tile, "seconds": seconds, "base_mb": base / 1024, "peak_mb": peak / 1024,
                      "peak_reset": reset, "shape": list(out.shape), "weights": weights, "image": source}))


def run_children(args: argparse.Namespace) -> None:
    tiles = list(args.tiles) + ([0] if args.untiled else [])
    print(f"{args.model}, {args.size[1]}×{args.size[0]} colour image, {args.precision}, one subprocess per tile size")
    print(f"{'tile':>8s} {'time s':>8s} {'RSS before MB':>14s} {'peak RSS MB':>12s} {'peak − before':>14s}")
    notes = set()
    for tile in tiles:
        cmd = [sys.executable, __file__, "--child", "--tile", str(tile), "--model", args.model,
               "--size", *map(str, args.size), "--precision", args.precision]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"
            print(f"{tile or 'whole':>8}  failed: {last}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        notes.add(f"weights: {r['weights']}; image: {r['image']}")
        print(f"{tile or 'whole':>8} {r['seconds']:8.1f} {r['base_mb']:14.0f} {r['peak_mb']:12.0f} "
              f"{r['peak_mb'] - r['base_mb']:14.0f}")
    for note in sorted(notes):
        print(f"({note})")


def _edge_band(starts: tuple[int, ...], size: int, length: int, width: int) -> torch.Tensor:
    """1-D mask of positions within ``width`` of an interior tile edge."""
    band = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        for edge in (s, s + size):
            if 0 < edge < length:
                band[max(0, edge - width):edge + width] = True
    return band


def crop_comparison(args: argparse.Namespace) -> None:
    from restorekit.metrics import psnr

    model, weights = load_model(args.model)
    clean, noisy, source = make_image(*args.size)
    c = args.crop
    y0, x0 = (clean.shape[-2] - c) // 2, (clean.shape[-1] - c) // 2
    clean, noisy = clean[..., y0:y0 + c, x0:x0 + c].contiguous(), noisy[..., y0:y0 + c, x0:x0 + c].contiguous()
    t0 = time.perf_counter()
    whole = restore_tensor(model, noisy, InferenceOptions(precision=args.precision, device="cpu"))
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    tiled = restore_tensor(model, noisy, InferenceOptions(tile=args.crop_tile, precision=args.precision, device="cpu"))
    t_tiled = time.perf_counter() - t0
    spec = model_spec(model, None)
    overlap = min(3 * receptive_radius(model), args.crop_tile // 2)
    plan = plan_tiles(c, c, tile=args.crop_tile, overlap=overlap, multiple=spec.multiple)
    rows, cols = _edge_band(plan.ys, plan.tile_h, c, overlap), _edge_band(plan.xs, plan.tile_w, c, overlap)
    band = rows[:, None] | cols[None, :]
    diff = (tiled - whole).abs().amax(1)[0]
    p_whole, p_tiled = float(psnr(whole, clean)), float(psnr(tiled, clean))
    print(f"\n{c}×{c} crop ({source}, {weights}), tile {args.crop_tile}, automatic overlap {overlap} "
          f"(receptive radius {receptive_radius(model)}), {plan.count} tiles:")
    print(f"  PSNR whole {p_whole:.4f} dB ({t_whole:.1f} s), tiled {p_tiled:.4f} dB ({t_tiled:.1f} s), "
          f"Δ {p_tiled - p_whole:+.5f} dB")
    print(f"  max |tiled − whole|: tile-border bands {diff[band].max().item():.2e}, elsewhere "
          f"{diff[~band].max().item():.2e} (bands cover {100 * band.float().mean().item():.0f}% of pixels)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cdncnn-b-folded", help="built-in name, checkpoint file or registered name")
    parser.add_argument("--size", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    parser.add_argument("--tiles", type=int, nargs="*", default=(256, 512, 1024))
    parser.add_argument("--untiled", action="store_true", help="also the whole image in one piece")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--crop", type=int, default=1024)
    parser.add_argument("--crop-tile", type=int, default=512)
    parser.add_argument("--no-crop", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    run_children(args)
    if not args.no_crop:
        crop_comparison(args)


if __name__ == "__main__":
    main()
