"""precision="auto" against fp32 on a real colour photo, in one run: time (interleaved repeats, best of
each), the ratio, and PSNR of both against the clean image; with --tiled-vs-whole also what the automatic
tiling of large images (restorekit.inference.batch.auto_tile) changes: the largest difference between a
tiled and a whole-image result, per precision.

The image is a Kodak24 photo (../shared) resized (bicubic) to --size, with σ --sigma Gaussian noise (seeded);
a synthetic smooth image where ../shared is absent. What auto picks on this machine is printed first.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/auto_precision.py --size 512 512 --repeats 5
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/auto_precision.py --size 2000 3000 --tile 512 --repeats 1
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/auto_precision.py --size 2100 2100 --repeats 1 --tiled-vs-whole
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from restorekit.inference import InferenceOptions, describe_precision, resolve_device, restore_tensor
from restorekit.inference.batch import AUTO_TILE
from restorekit.metrics import psnr
from restorekit.pretrained import load_weights

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "denoise" / "Kodak24"


def clean_image(name: str, size: tuple[int, int]) -> tuple[torch.Tensor, str]:
    path = SHARED / name
    if path.is_file():
        from restorekit.io import image_to_tensor, read_image

        x = image_to_tensor(read_image(path, channels=3).pixels)
        source = f"{path.name} resized"
    else:
        yy, xx = torch.meshgrid(torch.linspace(0, 6, 256), torch.linspace(0, 6, 256), indexing="ij")
        x = torch.stack([(yy.sin() + 1) / 2, (xx.cos() + 1) / 2, ((yy + xx).sin() + 1) / 2])[None]
        source = f"synthetic ({SHARED} absent)"
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return x, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default-color", help="built-in name or weights file")
    parser.add_argument("--image", default="kodim01.png", help="a Kodak24 file name")
    parser.add_argument("--size", nargs=2, type=int, default=[512, 512], metavar=("H", "W"))
    parser.add_argument("--sigma", type=float, default=25)
    parser.add_argument("--tile", type=int, default=None, help="tile size (default: whole image)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tiled-vs-whole", action="store_true",
                        help=f"also compare tile={AUTO_TILE} (the automatic tile of large images) with whole-image results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_weights(args.model)
    clean, source = clean_image(args.image, tuple(args.size))
    gen = torch.Generator().manual_seed(0)
    noisy = clean + args.sigma / 255 * torch.randn(clean.shape, generator=gen)
    device = resolve_device("cpu")
    configs = {"fp32": InferenceOptions(precision="fp32", device="cpu", tile=args.tile),
               "auto": InferenceOptions(precision="auto", device="cpu", tile=args.tile)}
    h, w = args.size
    print(f"{args.model} on {source}, {h}×{w}, σ{args.sigma:g}, tile {args.tile}, {torch.get_num_threads()} threads")
    print(f"auto here: {describe_precision(configs['auto'], device)}")

    outs = {k: restore_tensor(model, noisy, o) for k, o in configs.items()}  # warm-up, and the outputs
    times: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(args.repeats):  # interleaved: both see the same load on a shared machine
        for k, o in configs.items():
            t0 = time.perf_counter()
            restore_tensor(model, noisy, o)
            times[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    for k in configs:
        p = float(psnr(outs[k], clean, protocol="dncnn"))
        print(f"  {k:<5} best {best[k]:8.3f} s  ({h * w / best[k] / 1e6:6.3f} MP/s)  PSNR {p:.3f} dB  "
              f"times {', '.join(f'{t:.3f}' for t in times[k])}")
    gap = float(psnr(outs["auto"], clean, protocol="dncnn")) - float(psnr(outs["fp32"], clean, protocol="dncnn"))
    print(f"  auto vs fp32: {best['fp32'] / best['auto']:.2f}× faster, PSNR {gap:+.4f} dB, "
          f"max |Δ| {(outs['auto'] - outs['fp32']).abs().max().item() * 255:.2f} / 255")

    if args.tiled_vs_whole:
        for k, o in configs.items():
            whole = outs[k] if args.tile is None else restore_tensor(model, noisy, InferenceOptions(
                precision=o.precision, device="cpu"))
            tiled = restore_tensor(model, noisy, InferenceOptions(precision=o.precision, device="cpu", tile=AUTO_TILE))
            print(f"  {k:<5} tile {AUTO_TILE} vs whole: max |Δ| {(tiled - whole).abs().max().item():.2e} "
                  f"(on [0, 1]; {(tiled - whole).abs().max().item() * 255:.4f} / 255)")


if __name__ == "__main__":
    main()
