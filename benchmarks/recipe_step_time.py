"""Seconds per training step of recipes (by default every CPU-sized variant, ``NAME-cpu``) on this
machine, through restorekit's own training step on the recipe's real data, and the run's projected
length: how the CPU variants were sized (about an hour on 2 cores each).

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/recipe_step_time.py [NAME ...] [--steps 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from restorekit.data import StepSampler, make_loader
from restorekit.recipes import CPU_SUFFIX, list_recipes, load_recipe
from restorekit.train.config import build_config, resolve_paths
from restorekit.train.distributed import DistInfo
from restorekit.train.loop import Trainer


def seconds_per_step(name: str, steps: int) -> tuple[float, int]:
    """Mean seconds of ``steps`` training steps after one untimed step, and the recipe's step count."""
    overrides = ["train.progress=false", "train.tensorboard=false", "train.plot=false", "model.init_from=null"]
    cfg = resolve_paths(build_config(load_recipe(name), overrides))
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(cfg, Path(folder) / "run", DistInfo())
        batches = iter(make_loader(trainer.train_set,
                                   StepSampler(len(trainer.train_set), cfg.train.batch_size, total=steps + 1)))
        trainer.train_step(next(batches), 0)
        start = time.perf_counter()
        for step, batch in enumerate(batches, 1):
            trainer.train_step(batch, step)
        total = cfg.train.steps or cfg.train.epochs * trainer.steps_per_epoch
        return (time.perf_counter() - start) / steps, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="recipes (default: every CPU-sized variant)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per recipe")
    args = parser.parse_args()
    names = args.names or [n for n in list_recipes() if n.endswith(CPU_SUFFIX)]
    print(f"{torch.get_num_threads()} thread(s)")
    print(f"{'recipe':<32} {'s/step':>7} {'steps':>6} {'projected':>10}")
    for name in names:
        sec, total = seconds_per_step(name, args.steps)
        print(f"{name:<32} {sec:7.2f} {total:6d} {sec * total / 60:8.0f} min", flush=True)


if __name__ == "__main__":
    main()
