"""DnCNN-S inference speed on one 512×512 gray image: fp32 and bf16 paths against this machine's
peaks measured in the same run, then PSNR on BSD68 σ25 with the official weights, fp32 vs bf16.

Peaks: a 2048³ torch.matmul and a 3×3 convolution of 256 channels on 512×512 (MKL's fp32 matmul is
slow on AMD; oneDNN's convolutions are not), the faster per precision. Peaks and paths are
interleaved, best of --repeats, so that a busy machine slows all of them alike. Paths:
  fp32 eager NCHW          the trained-form model (conv + BatchNorm) called directly: the baseline
  fp32 NHWC folded         restore_tensor(channels_last=True): BN folded, channels_last
  bf16 (restorekit)        restore_tensor(precision="bf16"): autocast + channels_last, conv weights
                           cast to bf16 once (the chosen path)
  bf16 autocast NCHW/NHWC  plain autocast (weights cast on every call)
  bf16 weights NCHW/NHWC   model.to(bfloat16) with bf16 input
  bf16 jit.freeze          traced + frozen bf16 model
  bf16 mkldnn              torch.utils.mkldnn.to_mkldnn(body, bfloat16)
  bf16 compile             torch.compile + autocast + channels_last (with --compile; slow to build)

    PYTHONPATH=src python benchmarks/inference_speed.py [--size 512] [--repeats 5] [--threads N]
        [--images 68] [--no-psnr] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils import mkldnn

from restorekit.eval.env import environment
from restorekit.eval.speed import count_flops, peak_kernels
from restorekit.inference import InferenceOptions, restore_tensor
from restorekit.models import create_model
from restorekit.models.fold import fold_batchnorm

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "weights" / "dncnn-matconvnet" / "sigma=25.mat"
BSD68 = SHARED / "data" / "denoise" / "BSD68"


def _autocast(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn(x)
    return run


def candidates(size: int, compile_too: bool) -> dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor], torch.Tensor]]:
    """name → (precision, function, input) for DnCNN-S on a size×size gray image."""
    torch.manual_seed(0)
    trained = create_model("dncnn-s").eval()
    with torch.no_grad():
        for m in trained.modules():  # trained-like BN (the initial scales are tiny: the output would be x)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_var.uniform_(0.5, 2.0)
    folded = fold_batchnorm(trained)
    x = torch.rand(1, 1, size, size)
    nhwc = x.contiguous(memory_format=torch.channels_last)
    folded_cl = copy.deepcopy(folded).to(memory_format=torch.channels_last)
    weights16 = copy.deepcopy(folded).to(torch.bfloat16)
    weights16_cl = copy.deepcopy(weights16).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        frozen = torch.jit.freeze(torch.jit.trace(weights16, x.bfloat16()))
    body = mkldnn.to_mkldnn(copy.deepcopy(folded.body), torch.bfloat16)
    out: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor], torch.Tensor]] = {
        "fp32 eager NCHW": ("fp32", trained, x),
        "fp32 NHWC folded": ("fp32", lambda t: restore_tensor(trained, t, InferenceOptions(channels_last=True, device="cpu", clamp=False)), x),
        "bf16 (restorekit)": ("bf16", lambda t: restore_tensor(trained, t, InferenceOptions(precision="bf16", device="cpu", clamp=False)), x),
        "bf16 autocast NCHW": ("bf16", _autocast(folded), x),
        "bf16 autocast NHWC": ("bf16", _autocast(folded_cl), nhwc),
        "bf16 weights NCHW": ("bf16", lambda t: weights16(t.bfloat16()).float(), x),
        "bf16 weights NHWC": ("bf16", lambda t: weights16_cl(t.bfloat16()).float(), nhwc),
        "bf16 jit.freeze": ("bf16", lambda t: frozen(t.bfloat16()).float(), x),
        "bf16 mkldnn": ("bf16", lambda t: t - body(t.to_mkldnn(torch.bfloat16)).to_dense(torch.float32), x),
    }
    if compile_too:
        compiled = torch.compile(copy.deepcopy(folded_cl))
        out["bf16 compile"] = ("bf16", _autocast(compiled), nhwc)
    return out


def speed(size: int, repeats: int, compile_too: bool) -> None:
    peak_fns = {f"{p} {kind}": (p, fn, kflops) for p in ("fp32", "bf16")
                for kind, (fn, kflops) in peak_kernels(p, "cpu", 2048).items()}
    flops = count_flops(create_model("dncnn-s"), torch.rand(1, 1, size, size), InferenceOptions(device="cpu"))
    cands = candidates(size, compile_too)
    best = {name: float("inf") for name in [*peak_fns, *cands]}
    with torch.inference_mode():
        ref = cands["fp32 eager NCHW"][1](cands["fp32 eager NCHW"][2])
        errors = {name: (fn(x).float() - ref).abs().max().item() for name, (_, fn, x) in cands.items()}  # warm-up too
        for _, fn, _ in peak_fns.values():
            fn()
        for _ in range(repeats):  # peaks and paths interleaved: a busy machine slows all alike
            for name, (_, fn, _) in peak_fns.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
            for name, (_, fn, x) in cands.items():
                t0 = time.perf_counter()
                fn(x)
                best[name] = min(best[name], time.perf_counter() - t0)
    print(f"machine: {environment()}")
    rates = {name: peak_fns[name][2] / best[name] / 1e9 for name in peak_fns}
    peaks = {p: max(r for name, r in rates.items() if peak_fns[name][0] == p) for p in ("fp32", "bf16")}
    print("peaks (GFLOP/s; 2048³ matmul, 3×3 conv 256 ch on 512²): " + ", ".join(f"{name} {r:.0f}" for name, r in rates.items()))
    print(f"DnCNN-S {size}×{size}: {flops / 1e9:.1f} GFLOP per image (counted); best of {repeats}")
    base = best["fp32 eager NCHW"]
    print(f"\n{'path':22s} {'ms':>8s} {'GFLOP/s':>8s} {'%peak':>6s} {'vs fp32':>8s} {'max|Δ|':>9s}")
    for name, (precision, _, _) in cands.items():
        gflops = flops / best[name] / 1e9
        print(f"{name:22s} {best[name] * 1e3:8.1f} {gflops:8.1f} {100 * gflops / peaks[precision]:5.0f}% "
              f"{base / best[name]:7.2f}× {errors[name]:9.2e}")


def psnr_bsd68(images: int) -> None:
    if not WEIGHTS.is_file() or not BSD68.is_dir():
        print(f"\nPSNR: skipped ({SHARED} not found)")
        return
    from restorekit.convert import convert_file
    from restorekit.degradations.noise import add_named_gaussian_noise
    from restorekit.io import image_to_tensor, read_image
    from restorekit.metrics import psnr

    conv = convert_file(WEIGHTS)
    model = create_model(conv.arch, **conv.args)
    model.load_state_dict(conv.state_dict)
    files = sorted(BSD68.glob("*.png"))[:images]
    results: dict[str, list[float]] = {"noisy": [], "fp32": [], "bf16": []}
    times = {"fp32": 0.0, "bf16": 0.0}
    for path in files:
        clean = image_to_tensor(read_image(path, channels=1).pixels)
        noisy = add_named_gaussian_noise(clean, 25, path.name)
        results["noisy"].append(float(psnr(noisy.clamp(0, 1), clean, protocol="dncnn")))
        for precision in ("fp32", "bf16"):
            t0 = time.perf_counter()
            out = restore_tensor(model, noisy, InferenceOptions(precision=precision, device="cpu"))
            times[precision] += time.perf_counter() - t0
            results[precision].append(float(psnr(out, clean, protocol="dncnn")))
    mean = {k: sum(v) / len(v) for k, v in results.items()}
    worst = max(abs(a - b) for a, b in zip(results["fp32"], results["bf16"]))
    print(f"\nBSD68 σ25, official DnCNN-S sigma=25.mat, {len(files)} images (noise seeded by file name):")
    print(f"  noisy {mean['noisy']:.3f} dB | fp32 {mean['fp32']:.3f} dB ({times['fp32']:.1f} s) | "
          f"bf16 {mean['bf16']:.3f} dB ({times['bf16']:.1f} s) | mean Δ {mean['bf16'] - mean['fp32']:+.4f} dB, "
          f"worst image |Δ| {worst:.4f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--images", type=int, default=68, help="BSD68 images for the PSNR check")
    parser.add_argument("--no-psnr", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (builds for minutes)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    speed(args.size, args.repeats, args.compile)
    if not args.no_psnr:
        psnr_bsd68(args.images)


if __name__ == "__main__":
    main()
