"""Training: a real short run, exact resume (after SIGKILL and after a signal), config validation,
schedules, EMA, NaN handling and the state file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from restorekit.checkpoints import checkpoint_metadata, load, read_checkpoint
from restorekit.errors import RestoreKitError
from restorekit.metrics import psnr
from restorekit.models.dncnn import DnCNN
from restorekit.models.registry import register_model
from restorekit.train import TrainConfig, build_config, train
from restorekit.train.config import ScheduleConfig, parse_override
from restorekit.train.ema import EMA
from restorekit.train.schedule import Schedule

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = "tiny-dncnn-test"


def _register(name: str, factory) -> None:
    try:
        register_model(name, family="dncnn", task="denoise", channels=1)(factory)
    except ValueError:  # registered by another test module
        pass


def tiny_dncnn(channels: int = 1, batch_norm: bool = False) -> DnCNN:
    return DnCNN(channels, depth=5, features=16, batch_norm=batch_norm, bias=True)


_register(TINY, tiny_dncnn)


def make_images(folder: Path, n: int, size: int = 48, channels: int = 1, seed: int = 0) -> Path:
    """Smooth random images (a 4×4 grid upsampled): easy to denoise, so a few steps show progress."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = (rng.random((4, 4, channels)) * 255).astype(np.uint8)
        img = Image.fromarray(small.squeeze(-1) if channels == 1 else small).resize((size, size), Image.BICUBIC)
        img.save(folder / f"img{i:02d}.png")
    return folder


def tiny_config(tmp: Path, **train: object) -> dict:
    noise = {"name": "gaussian-noise", "params": {"sigma": 50}}
    if not (tmp / "data").exists():
        make_images(tmp / "data" / "train", 8)
        make_images(tmp / "data" / "val", 2, seed=1)
    return {
        "name": "tiny",
        "model": {"name": TINY},
        "data": {
            "train": {"root": str(tmp / "data" / "train"), "patch": {"size": 32}, "augment": "x8", "degradation": noise},
            "val": {"root": str(tmp / "data" / "val"), "degradation": noise},
        },
        "loss": "mse",
        "optim": {"lr": 3e-3},
        "train": {"steps": 40, "batch_size": 4, "val_every": 20, "val_unit": "step", "log_every": 5,
                  "progress": False, "tensorboard": False, **train},
    }


# --------------------------------------------------------------------------- a real run


def test_short_run_beats_the_noisy_input_and_best_checkpoint_restores(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, steps=30, ema=0.9, val_every=15)
    run = train(cfg | {"run_dir": str(tmp_path / "run")})
    assert {"config.yaml", "metrics.csv", "curves.png", "state.pt", "best.safetensors", "best-raw.safetensors",
            "last.safetensors", "last-raw.safetensors", "train.log"} <= {p.name for p in run.iterdir()}

    from restorekit.data import build_val_set
    from restorekit.train.config import build_config as bc

    val = build_val_set(bc(cfg).data.val, 1)
    noisy = float(np.mean([float(psnr(v.input.clamp(0, 1), v.target)) for v in val]))
    rows = [r for r in (run / "metrics.csv").read_text().splitlines()[1:] if r.split(",")[4]]
    final_psnr = float(rows[-1].split(",")[4])
    assert final_psnr > noisy + 1.0, (final_psnr, noisy)

    meta = checkpoint_metadata(run / "best.safetensors")
    assert meta["weights"] == "ema" and meta["arch"] == TINY and meta["step"] == 30
    assert checkpoint_metadata(run / "best-raw.safetensors")["weights"] == "raw"
    assert meta["config"]["train"]["ema"] == 0.9 and meta["best_psnr"] == pytest.approx(final_psnr, abs=1e-3)
    assert {"cpu", "torch"} <= set(meta["hardware"]) and meta["wall_time"] > 0
    model = load(run / "best.safetensors")
    with torch.no_grad():
        restored = model(val[0].input).clamp(0, 1)
    assert float(psnr(restored, val[0].target)) > float(psnr(val[0].input.clamp(0, 1), val[0].target)) + 1.0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["steps"] == 30 and Path(saved["data"]["train"]["root"][0]).is_absolute()


# --------------------------------------------------------------------------- exact resume

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
    args = json.loads(sys.argv[1])
    train(args.get("config"), resume=args.get("resume"))
    """
)


def _run_script(tmp: Path, args: dict) -> subprocess.Popen:
    script = tmp / "run_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), json.dumps(args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _final(run: Path) -> dict:
    return torch.load(run / "state.pt", weights_only=True)


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][key], b["ema"]["module"][key]), key
    for pid, s in a["optimizer"]["state"].items():
        for k, v in s.items():
            assert torch.equal(v, b["optimizer"]["state"][pid][k])


def test_sigkill_then_resume_is_bit_identical(tmp_path: Path) -> None:
    base = tiny_config(tmp_path, steps=80, batch_size=8, ema=0.9, log_every=1, checkpoint_every=8,
                       val_every=40, locally_training_num=2)
    base["data"]["train"]["patch"]["size"] = 40
    ref = _run_script(tmp_path, {"config": base | {"run_dir": str(tmp_path / "ref")}})
    killed_dir = tmp_path / "killed"
    victim = _run_script(tmp_path, {"config": base | {"run_dir": str(killed_dir)}})
    csv = killed_dir / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None:
        lines = csv.read_text().splitlines() if csv.exists() else []
        if len(lines) > 1 and int(lines[-1].split(",")[0]) >= 20:
            victim.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert victim.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert ref.wait() == 0, ref.stderr.read().decode()
    killed_at = _final(killed_dir)["step"]
    assert 16 <= killed_at < 80
    resumed = _run_script(tmp_path, {"resume": str(killed_dir)})
    assert resumed.wait() == 0, resumed.stderr.read().decode()
    _assert_same_state(_final(tmp_path / "ref"), _final(killed_dir))
    a, _ = read_checkpoint(tmp_path / "ref" / "last.safetensors")
    b, _ = read_checkpoint(killed_dir / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [int(r.split(",")[0]) for r in csv.read_text().splitlines()[1:]]
    assert steps == list(range(1, 81)), "the CSV of a resumed run has each step once"


class _SignalAt(torch.nn.Module):
    """Wraps the tiny model; sends ``signum`` to this process on forward call ``at`` (training only)."""

    calls = 0

    def __init__(self, at: int, signum: int) -> None:
        super().__init__()
        self.net, self.at, self.signum = tiny_dncnn(), at, signum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            type(self).calls += 1
            if type(self).calls == self.at:
                os.kill(os.getpid(), self.signum)
        return self.net(x)


def test_sigterm_saves_a_resumable_state_and_resume_is_exact(tmp_path: Path) -> None:
    _register("signal-test", lambda channels=1, at=0: _SignalAt(at, signal.SIGTERM))
    cfg = tiny_config(tmp_path, steps=16, ema=0.5, val_every=8)
    cfg["model"] = {"name": "signal-test", "args": {"at": 0}}
    ref = train(cfg | {"run_dir": str(tmp_path / "ref")})
    _SignalAt.calls = 0
    cfg["model"]["args"]["at"] = 5
    run = train(cfg | {"run_dir": str(tmp_path / "stopped")})
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 5 and "stopped by signal" in (run / "train.log").read_text()
    train(resume=run)  # `at` was passed already: no second signal
    _assert_same_state(torch.load(ref / "state.pt", weights_only=True), torch.load(run / "state.pt", weights_only=True))


def test_state_file_loads_with_weights_only(tmp_path: Path) -> None:
    run = train(tiny_config(tmp_path, steps=4, ema=0.9, val_every=4) | {"run_dir": str(tmp_path / "r")})
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 4 and state["data"]["position"] == 4
    assert {"torch", "numpy", "python", "cuda"} <= set(state["rng"])
    assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)
    assert state["optimizer"]["state"] and state["ema"]["updates"] == 4


def test_finished_run_resumes_as_a_no_op(tmp_path: Path) -> None:
    run = train(tiny_config(tmp_path, steps=2, val_every=2) | {"run_dir": str(tmp_path / "r")})
    before = (run / "state.pt").read_bytes()
    assert train(resume=run) == run
    assert (run / "state.pt").read_bytes() == before


def test_time_budget_ends_the_run_saved_and_a_larger_one_continues_it(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, steps=6, val_every=100, max_minutes=1e-6) | {"run_dir": str(tmp_path / "r")}
    run = train(cfg)
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 1  # the first step already spends the budget
    assert (run / "last.safetensors").is_file() and (run / "best.safetensors").is_file()  # validated as at the end
    assert "time budget of 1e-06 min reached at step 1 of 6" in (run / "train.log").read_text()
    before = (run / "state.pt").read_bytes()
    assert train(resume=run) == run and (run / "state.pt").read_bytes() == before  # spent: nothing more
    train(resume=run, overrides=["train.max_minutes=null"], allow_config_change=True)
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 6
    with pytest.raises(RestoreKitError, match="max_minutes must be > 0"):
        build_config(tiny_config(tmp_path), ["train.max_minutes=0"])


# --------------------------------------------------------------------------- config


def test_misspelt_keys_name_the_nearest_valid_one(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    with pytest.raises(RestoreKitError, match=r"'train.batch_sise'.*'train.batch_size'"):
        build_config(cfg, ["train.batch_sise=8"])
    with pytest.raises(RestoreKitError, match=r"'optimizer'.*'optim'"):
        build_config(cfg | {"optimizer": {}})
    with pytest.raises(RestoreKitError, match=r"precision.*bf16"):
        build_config(cfg, ["train.precision=bf61"])
    with pytest.raises(RestoreKitError, match="exactly one of"):
        build_config(cfg, ["train.epochs=3"])


def test_overrides_parse_as_yaml(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path), [
        "optim.lr=1e-4", "optim.betas=[0.9, 0.99]", "train.channels_last=true", "loss=l1",
        "schedule.milestones=[30]", "schedule.name=multistep", "data.train.root=/elsewhere",
        "data.val.center_crop=32", "model.args.channels=1",
    ])
    assert cfg.optim.lr == 1e-4 and cfg.optim.betas == [0.9, 0.99] and cfg.train.channels_last is True
    assert cfg.loss == "l1" and cfg.schedule.milestones == [30] and cfg.data.train.root == ["/elsewhere"]
    assert cfg.data.val.center_crop == 32 and cfg.model.args == {"channels": 1}
    assert parse_override("a.b= [1, x]") == (["a", "b"], [1, "x"])
    with pytest.raises(RestoreKitError, match="key.sub=value"):
        parse_override("no-equals-sign")


def test_resume_with_a_changed_config_lists_the_differences(tmp_path: Path) -> None:
    run = train(tiny_config(tmp_path, steps=2, val_every=2) | {"run_dir": str(tmp_path / "r")})
    with pytest.raises(RestoreKitError, match=r"optim.lr: 0.003 -> 0.001.*train.steps: 2 -> 4"):
        train(resume=run, overrides=["optim.lr=1e-3", "train.steps=4"])
    train(resume=run, overrides=["train.steps=4"], allow_config_change=True)
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 4
    with pytest.raises(RestoreKitError, match="already holds a run"):
        train(tiny_config(tmp_path) | {"run_dir": str(run)})


def test_config_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path))
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert build_config(path) == cfg and isinstance(cfg, TrainConfig)


# --------------------------------------------------------------------------- pieces


def test_schedules() -> None:
    multi = Schedule(ScheduleConfig(name="multistep", milestones=[30], gamma=0.1), 50 * 10, 10, 1e-3)
    assert multi.lr(299) == pytest.approx(1e-3) and multi.lr(300) == pytest.approx(1e-4)
    # MPRNet: 3 warm-up epochs (1/3, 2/3, 1 of the rate), then cosine to 1e-6 at the end
    mpr = Schedule(ScheduleConfig(name="warmup-cosine", warmup=3, eta_min=1e-6), 100 * 5, 5, 2e-4)
    assert [mpr.lr(e * 5) for e in range(3)] == pytest.approx([2e-4 / 3, 4e-4 / 3, 2e-4])
    assert mpr.lr(3 * 5) == pytest.approx(2e-4) and mpr.lr(5 * 100 - 1) == pytest.approx(1e-6, rel=0.1)
    cos = Schedule(ScheduleConfig(name="cosine", unit="step"), 100, 7, 1.0)
    assert cos.lr(50) == pytest.approx(0.5) and cos.lr(0) == 1.0
    step = Schedule(ScheduleConfig(name="step", step_size=10, gamma=0.5), 1000, 10, 1.0)
    assert step.lr(10 * 25) == pytest.approx(0.25)


def test_ema_tracks_the_weights() -> None:
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, 0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update(model)  # first update: warm-up decay min(0.5, 1/10) = 0.1
    assert torch.allclose(ema.module.weight, start + 1.8)
    restored = EMA(model, 0.5)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.module.weight, ema.module.weight) and restored.updates == 1


class _NaNAfter(torch.nn.Module):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.net, self.after, self.calls = tiny_dncnn(), after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += self.training
        out = self.net(x)
        return out * float("nan") if self.training and self.calls > self.after else out


def test_non_finite_losses_are_skipped_then_stop_the_run(tmp_path: Path) -> None:
    _register("nan-test", lambda channels=1, after=2: _NaNAfter(after))
    cfg = tiny_config(tmp_path, steps=20, max_bad_steps=3, val_every=20)
    cfg["model"] = {"name": "nan-test"}
    with pytest.raises(RestoreKitError, match="3 non-finite step"):
        train(cfg | {"run_dir": str(tmp_path / "r")})
    state = torch.load(tmp_path / "r" / "state.pt", weights_only=True)
    assert state["step"] == 5 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert "update skipped" in (tmp_path / "r" / "train.log").read_text()
    with pytest.raises(RestoreKitError, match="1 non-finite step"):
        train(cfg | {"run_dir": str(tmp_path / "s")}, overrides=["train.on_nan=stop"])


def test_bf16_channels_last_step_runs(tmp_path: Path) -> None:
    run = train(tiny_config(tmp_path, steps=2, val_every=2, precision="bf16", channels_last=True)
                | {"run_dir": str(tmp_path / "r")})
    state = torch.load(run / "state.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    if not torch.cuda.is_available():
        with pytest.raises(RestoreKitError, match="fp16 needs a CUDA"):
            train(tiny_config(tmp_path, steps=2, precision="fp16") | {"run_dir": str(tmp_path / "f")})


def test_missing_data_root_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg["data"]["train"]["root"] = str(tmp_path / "nowhere")
    with pytest.raises(RestoreKitError, match=r"data.train.root: .*nowhere does not exist.*--set data.train.root="):
        train(cfg | {"run_dir": str(tmp_path / "r")})


def test_ema_warms_up_instead_of_keeping_the_initial_weights():
    from torch import nn

    from restorekit.train.ema import EMA

    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(250):
        ema.update(model)
    # a plain 0.999 average would still be at 1 - 0.999**250 = 0.22
    assert ema.module.weight.item() > 0.95
