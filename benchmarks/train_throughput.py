"""Training throughput of DnCNN-S through restorekit's training step: fp32 NCHW vs bf16 autocast +
channels_last, in one run (same machine, same load), printing patches/s and the ratio.

    PYTHONPATH=src python benchmarks/train_throughput.py [--steps 20] [--batch 64] [--patch 40] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from restorekit.data import StepSampler, make_loader
from restorekit.train.config import build_config
from restorekit.train.distributed import DistInfo, pick_device
from restorekit.train.loop import Trainer


def measure(folder: Path, *, precision: str, channels_last: bool, steps: int, batch: int, patch: int,
            device: torch.device, warmup: int = 3) -> float:
    """Patches per second over ``steps`` training steps, after ``warmup`` untimed ones."""
    cfg = build_config({
        "model": {"name": "dncnn-s"},
        "data": {"train": {"root": str(folder), "patch": {"size": patch}, "augment": "x8",
                           "degradation": {"name": "gaussian-noise", "params": {"sigma": 25}}}},
        "loss": [{"name": "mse", "reduction": "sum_half_n"}],
        "train": {"steps": warmup + steps, "batch_size": batch, "precision": precision,
                  "channels_last": channels_last, "tensorboard": False, "progress": False, "plot": False},
    })
    trainer = Trainer(cfg, Path(tempfile.mkdtemp()), DistInfo(device=device))
    batches = list(make_loader(trainer.train_set, StepSampler(len(trainer.train_set), batch, total=warmup + steps)))
    for step, b in enumerate(batches[:warmup]):
        trainer.train_step(b, step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step, b in enumerate(batches[warmup:], warmup):
        trainer.train_step(b, step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--patch", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for i in range(args.batch):
            Image.fromarray((rng.random((args.patch * 2, args.patch * 2)) * 255).astype(np.uint8)).save(f"{tmp}/{i}.png")
        results = {}
        for label, precision, cl in (("fp32 NCHW", "fp32", False), ("bf16 + channels_last", "bf16", True)):
            results[label] = measure(Path(tmp), precision=precision, channels_last=cl, steps=args.steps,
                                     batch=args.batch, patch=args.patch, device=device)
    print(f"DnCNN-S training, {args.patch}x{args.patch} patches, batch {args.batch}, {args.steps} steps, "
          f"{device} ({torch.get_num_threads()} threads), torch {torch.__version__}")
    for label, value in results.items():
        print(f"  {label:22s} {value:8.1f} patches/s")
    print(f"  ratio bf16+CL / fp32  {results['bf16 + channels_last'] / results['fp32 NCHW']:8.2f}x")


if __name__ == "__main__":
    main()
