"""DDP on the CPU: two gloo processes under torchrun reach the weights of one process on the
combined batch. The tiny model has no BatchNorm: PyTorch's SyncBatchNorm is GPU-only, and plain
BatchNorm normalises each process's half-batch on its own, which is a different computation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restorekit.models.dncnn import DnCNN
from restorekit.models.registry import register_model
from restorekit.train import train

SRC = Path(__file__).resolve().parents[1] / "src"


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    from restorekit.models.dncnn import DnCNN
    from restorekit.models.registry import register_model
    register_model("tiny-dncnn-test", family="dncnn", task="denoise", channels=1)(
        lambda channels=1, batch_norm=False: DnCNN(channels, depth=5, features=16, batch_norm=batch_norm, bias=True))
    from restorekit.train import train
    train(json.loads(sys.argv[1]))
    """
)

try:
    register_model("tiny-dncnn-test", family="dncnn", task="denoise", channels=1)(
        lambda channels=1, batch_norm=False: DnCNN(channels, depth=5, features=16, batch_norm=batch_norm, bias=True))
except ValueError:
    pass


def _images(folder: Path, n: int) -> str:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        small = (rng.random((4, 4)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((32, 32), Image.BICUBIC).save(folder / f"{i}.png")
    return str(folder)


def test_two_gloo_processes_match_one_process_on_the_combined_batch(tmp_path: Path) -> None:
    cfg = {
        "name": "ddp",
        "model": {"name": "tiny-dncnn-test"},
        "data": {"train": {"root": _images(tmp_path / "train", 8), "patch": {"size": 24}, "augment": "x8",
                           "degradation": {"name": "gaussian-noise", "params": {"sigma_range": [10, 50]}}}},
        "loss": [{"name": "mse", "reduction": "sum_half_n"}],
        "optim": {"lr": 1e-3},
        "schedule": {"name": "multistep", "unit": "step", "milestones": [3]},
        "train": {"steps": 6, "batch_size": 4, "ema": 0.9, "progress": False, "tensorboard": False, "plot": False},
    }
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         json.dumps(cfg | {"run_dir": str(tmp_path / "ddp")})],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = train(cfg | {"run_dir": str(tmp_path / "single")})
    a = torch.load(tmp_path / "ddp" / "state.pt", weights_only=True)
    b = torch.load(single / "state.pt", weights_only=True)
    assert a["world_size"] == 2 and b["world_size"] == 1 and a["step"] == b["step"] == 6
    for key, value in b["model"].items():
        torch.testing.assert_close(a["model"][key], value, atol=1e-5, rtol=1e-5)
    for key, value in b["ema"]["module"].items():
        torch.testing.assert_close(a["ema"]["module"][key], value, atol=1e-5, rtol=1e-5)
    assert sorted(p.name for p in (tmp_path / "ddp").glob("*.safetensors")) == ["last-raw.safetensors", "last.safetensors"]


def test_sync_bn_on_cpu_is_refused_with_a_reason(tmp_path: Path) -> None:
    from restorekit.errors import RestoreKitError
    from restorekit.train.config import build_config
    from restorekit.train.distributed import DistInfo
    from restorekit.train.loop import Trainer

    cfg = build_config({
        "model": {"name": "tiny-dncnn-test", "args": {"batch_norm": True}},
        "data": {"train": {"root": _images(tmp_path / "train", 2), "degradation": "gaussian-noise"}},
        "train": {"steps": 1, "batch_size": 2, "sync_bn": True, "tensorboard": False},
    })
    with pytest.raises(RestoreKitError, match="SyncBatchNorm is GPU-only"):
        Trainer(cfg, tmp_path / "run", DistInfo(rank=0, world_size=2))
