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
from restorekit.train import Interrupted, TrainConfig, build_config, train
from restorekit.train.config import ScheduleConfig, parse_override, resolve_paths
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


def _logged_steps(run: Path) -> list[int]:
    return [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]


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


def test_validation_saves_samples_that_the_run_report_shows(tmp_path: Path) -> None:
    from restorekit.inference import restore_tensor
    from restorekit.io import read_image
    from restorekit.report import report_run

    run = train(tiny_config(tmp_path, steps=6, val_every=3) | {"run_dir": str(tmp_path / "run")})
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000003.png", "step_000006.png"]
    sheet = read_image(run / "samples" / "step_000006.png").pixels  # 2 validation images of 48², 4-px gaps
    assert sheet.shape[:2] == (2 * 48 + 4, 3 * 48 + 8)
    from restorekit.data import build_val_set

    val = build_val_set(build_config(tiny_config(tmp_path)).data.val, 1)
    restored = restore_tensor(load(run / "last.safetensors"), val[1].input)[0, 0].numpy()
    row = sheet[52:100, :, 0]
    columns = row[:, :48], row[:, 52:100], row[:, 104:152]
    for got, want in zip(columns, (val[1].input[0, 0].clamp(0, 1).numpy(), restored, val[1].target[0, 0].numpy())):
        assert np.abs(got - want).max() <= 1 / 255 + 1e-6  # input | output | target, as 8-bit PNG
    assert np.abs(columns[1] - columns[0]).mean() > 0.01, "the output column is the restored image, not the input"
    page = report_run(run).read_text()
    assert "Samples at step 6" in page and "input | output | target" in page


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
    cfg = tiny_config(tmp_path, steps=16, ema=0.5, val_every=8, log_every=50)
    cfg["model"] = {"name": "signal-test", "args": {"at": 0}}
    ref = train(cfg | {"run_dir": str(tmp_path / "ref")})
    _SignalAt.calls = 0
    cfg["model"]["args"]["at"] = 5
    with pytest.raises(Interrupted) as stopped:
        train(cfg | {"run_dir": str(tmp_path / "stopped")})
    run = tmp_path / "stopped"
    assert (stopped.value.run_dir, stopped.value.step, stopped.value.signum) == (run, 5, signal.SIGTERM)
    assert isinstance(stopped.value, KeyboardInterrupt)
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 5 and "stopped by signal" in (run / "train.log").read_text()
    # log_every is past the run's end: the first step and the stop still have their rows
    assert _logged_steps(run) == [1, 5]
    train(resume=run)  # `at` was passed already: no second signal
    _assert_same_state(torch.load(ref / "state.pt", weights_only=True), torch.load(run / "state.pt", weights_only=True))
    assert _logged_steps(run) == [1, 5, 8, 16]


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
    # a warm-up only warmup-cosine uses is refused elsewhere instead of silently ignored
    with pytest.raises(RestoreKitError, match="warmup-cosine"):
        build_config(cfg, ["schedule.name=cosine", "schedule.warmup=200"])
    assert build_config(cfg, ["schedule.name=warmup-cosine", "schedule.warmup=2"]).schedule.warmup == 2


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


@pytest.mark.parametrize("flags, expected", [(frozenset({"avx2"}), "fp32"), (frozenset({"avx2", "amx_bf16"}), "bf16")])
def test_auto_precision_trains_in_bf16_only_where_the_cpu_has_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 flags: frozenset, expected: str) -> None:
    import restorekit.inference.prepare as prepare

    monkeypatch.setattr(prepare, "cpu_flags", lambda: flags)
    run = train(tiny_config(tmp_path, steps=2, val_every=2, precision="auto", device="cpu")
                | {"run_dir": str(tmp_path / expected)})
    assert f"on 1×cpu, {expected} (auto: this CPU has" in (run / "train.log").read_text()


def test_missing_data_root_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg["data"]["train"]["root"] = str(tmp_path / "nowhere")
    with pytest.raises(RestoreKitError, match=r"data.train.root: .*nowhere does not exist") as err:
        train(cfg | {"run_dir": str(tmp_path / "r")})
    assert "--set data.train.root=PATH" in err.value.for_cli()
    assert not (tmp_path / "r").exists()


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


class _BGR255(torch.nn.Module):
    """Takes BGR in [0, 255] and gives two outputs per task, the last one final (as DuRN-S-P's colour
    order, IPT's range and MPRNet's stages): every conversion of the inference path is exercised."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleDict({k: torch.nn.Conv2d(3, 3, 3, padding=1) for k in ("a", "b")})

    def forward(self, x: torch.Tensor, task: str | None = None) -> list[torch.Tensor]:
        h = self.convs[task or "a"](x)
        return [x + h, x - 0.5 * h]


def test_training_and_inference_share_the_model_conversions(tmp_path: Path) -> None:
    from restorekit.inference import prepare
    from restorekit.inference.prepare import RestoreModule
    from restorekit.train import loop
    from restorekit.train.distributed import DistInfo

    try:
        register_model("bgr255-test", family="toy", task="denoise", channels=3, input_range=255.0, color_order="bgr",
                       output_index=1, tasks=("a", "b"))(lambda: _BGR255())
    except ValueError:
        pass
    assert loop.to_model_input is prepare.to_model_input and loop.from_model_output is prepare.from_model_output
    cfg = build_config(tiny_config(tmp_path) | {"model": {"name": "bgr255-test"}})
    trainer = loop.Trainer(cfg, tmp_path / "run", DistInfo())
    model = trainer.model.eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        stages, features = trainer.forward(x, "b")
        inferred = RestoreModule(model, model.info, task="b")(x)
        by_hand = [y.div(255.0).flip(1) for y in model(x.flip(1) * 255.0, task="b")]
        unconverted = model(x, task="b")[1]
    assert features is None and len(stages) == 2
    assert torch.equal(stages[1], inferred), "the trainer's forward and the inference path convert differently"
    assert all(torch.equal(s, h) for s, h in zip(stages, by_hand))
    assert not torch.allclose(unconverted, inferred, atol=1e-3)


# --------------------------------------------------------------------------- data roots and a failed start


def test_data_roots_are_found_as_named_sets_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / "library"
    named = make_images(library / "denoise" / "TinySet", 4)
    elsewhere = tmp_path / "elsewhere"
    make_images(elsewhere / "local", 4)
    monkeypatch.setenv("RESTOREKIT_DATA", str(library))
    monkeypatch.chdir(elsewhere)

    def roots(*given: str) -> list[str]:
        cfg = build_config(tiny_config(tmp_path), [f"data.train.root={list(given)}", "data.val=null"])
        return resolve_paths(cfg).data.train.root

    named, elsewhere = named.resolve(), elsewhere.resolve()
    assert roots("TinySet", "denoise/TinySet", "../shared/data/denoise/TinySet") == [str(named)] * 3
    assert roots("local", str(named)) == [str(elsewhere / "local"), str(named)]  # relative to cwd; absolute as given
    with pytest.raises(RestoreKitError) as err:
        roots("NoSuchSet")
    assert f"data.train.root: NoSuchSet does not exist in {elsewhere}" in str(err.value)
    assert str(library) in str(err.value) and "RESTOREKIT_DATA" in err.value.for_cli()

    run = train(tiny_config(tmp_path, steps=1, val_every=1) | {"name": "named"}, overrides=["data.train.root=TinySet"])
    assert run == elsewhere / "runs" / "named"
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["train"]["root"] == [str(named)]


class _FailsInTraining(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_dncnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("broken forward")
        return self.net(x)


def test_a_failed_start_leaves_no_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register("fails-in-training", lambda channels=1: _FailsInTraining())
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(tmp_path) | {"name": "failing"}
    other = tmp_path / "other.safetensors"
    from restorekit.checkpoints import save_checkpoint

    save_checkpoint(other, DnCNN(1, depth=3, features=8, batch_norm=False, bias=True), arch="dncnn-s")
    starts = {
        "a misspelt key": (RestoreKitError, ["train.batch_sise=2"]),
        "missing data": (RestoreKitError, [f"data.train.root={tmp_path / 'nowhere'}"]),
        "an init_from that does not exist": (RestoreKitError, ["model.init_from=missing.safetensors"]),
        "an init_from of another model": (RestoreKitError, [f"model.init_from={other}"]),
        "an unknown model": (RestoreKitError, ["model.name=no-such-model"]),
        "a first step that fails": (RuntimeError, ["model.name=fails-in-training"]),
    }
    for what, (error, overrides) in starts.items():
        with pytest.raises(error):
            train(cfg, overrides=overrides)
        assert not (tmp_path / "runs").exists(), what  # nor the runs/ folder that it made

    given = tmp_path / "mine"  # a folder of the user's: kept, with what it held
    given.mkdir()
    (given / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="broken forward"):
        train(cfg | {"run_dir": str(given)}, overrides=["model.name=fails-in-training"])
    assert [p.name for p in given.iterdir()] == ["notes.txt"]
    assert train(cfg | {"run_dir": str(given)}, overrides=["train.steps=1"]) == given  # and it can take a run


# --------------------------------------------------------------------------- time per step and projection


def test_step_timer_skips_the_warm_up_step_and_reports_once() -> None:
    from restorekit.train.timing import StepTimer

    ticks = iter([0.0, 30.0, 30.0, 32.0, 32.0, 35.0, 35.0, 36.0, 36.0, 100.0])
    timer = StepTimer(warmup=1, measure=3, clock=lambda: next(ticks))
    reports = []
    for _ in range(5):
        timer.start()
        reports.append(timer.stop())
    assert reports == [None, None, None, 2.0, None]  # (2 + 3 + 1) / 3; the 30-s first step is left out


def test_projection_lines_and_the_long_run_warning() -> None:
    import datetime as dt

    from restorekit.train.timing import project

    at = dt.datetime(2025, 5, 6, 9, 0)
    short = project(0.2, started_at=0, step=6, total_steps=10_000, steps_per_epoch=15, max_minutes=None,
                    wall_time=1.0, epochs=False, cpu_variant=None, at=at)
    assert short.line == "0.2 s/step here: the 10,000-step run will take about 0.6 h (finishing around 09:33)"
    assert short.warning is None
    # DnCNN-S-25 as on this project's CPU: 50 epochs of 1,862 steps at ~19 s a step
    long = project(19.0, started_at=0, step=6, total_steps=93_100, steps_per_epoch=1862, max_minutes=None,
                   wall_time=100.0, epochs=True, cpu_variant="dncnn-s-25-cpu", at=at)
    assert long.line.startswith("19 s/step here: the 93,100-step run will take about 491 h (finishing around ")
    assert long.warning.startswith("this run will take 20.5 days on this device; for a shorter one use ")
    assert "restorekit train --recipe dncnn-s-25-cpu" in long.warning
    assert "--set train.epochs=null --set train.steps=370 (about 2 h here)" in long.warning  # 7200 / 19 = 378
    resumed = project(19.0, started_at=50_000, step=50_006, total_steps=93_100, steps_per_epoch=1862,
                      max_minutes=None, wall_time=1e6, epochs=False, cpu_variant="dncnn-s-25-cpu", at=at)
    assert "the 43,100 steps left of the 93,100-step run will take about 227 h" in resumed.line
    assert resumed.warning.startswith("the rest of this run will take 9.5 days")
    assert "--set train.steps=50370 --allow-config-change" in resumed.warning and "cpu" not in resumed.warning
    capped = project(19.0, started_at=0, step=6, total_steps=93_100, steps_per_epoch=1862, max_minutes=60,
                     wall_time=100.0, epochs=True, cpu_variant=None, at=at)
    assert "train.max_minutes=60 ends the 93,100-step run at about step 191" in capped.line and capped.warning is None


def test_the_run_prints_its_projection_once_and_warns_when_it_takes_days(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import restorekit.recipes
    from restorekit.train import timing

    clock = iter(range(0, 10**9, 3000))  # each step "takes" 3,000 s: 40 steps are 33 h
    monkeypatch.setattr(timing, "now", lambda: float(next(clock)))
    monkeypatch.setattr(restorekit.recipes, "list_recipes", lambda: ["tiny", "tiny-cpu"])
    run = train(tiny_config(tmp_path, steps=40, val_every=40) | {"run_dir": str(tmp_path / "r")})
    log = (run / "train.log").read_text()
    assert log.count("s/step here") == 1
    assert "3,000 s/step here: the 40-step run will take about 33 h (finishing around " in log
    warning = ("warning: this run will take 28 h on this device; for a shorter one use `restorekit train "
               "--recipe tiny-cpu` (its CPU-sized variant) or --set train.steps=2 (about 2 h here)")
    assert warning in log and warning in capsys.readouterr().err

    fast = iter(range(0, 10**9, 1))  # a faster device: the line, no warning
    monkeypatch.setattr(timing, "now", lambda: float(next(fast)))
    run = train(tiny_config(tmp_path, steps=8, val_every=8) | {"run_dir": str(tmp_path / "fast")})
    log = (run / "train.log").read_text()
    assert "1 s/step here: the 8-step run will take about 8 s" in log and "warning" not in log


def test_train_only_learns_the_named_parameters_and_freezes_the_rest(tmp_path: Path) -> None:
    start = tiny_dncnn()
    from restorekit.checkpoints import save_checkpoint

    init = save_checkpoint(tmp_path / "init.safetensors", start.state_dict(), arch=TINY)
    cfg = tiny_config(tmp_path, steps=6, ema=None, val_every=6)
    cfg["model"] |= {"init_from": str(init), "train_only": r"^body\.8\."}
    run = train(cfg | {"run_dir": str(tmp_path / "run")})
    after, _ = read_checkpoint(run / "last.safetensors")
    changed = {k for k, v in start.state_dict().items() if not torch.equal(v, after[k])}
    assert changed == {"body.8.weight", "body.8.bias"}

    cfg["model"]["train_only"] = "guide"
    with pytest.raises(RestoreKitError, match="names none of .*'body.0.weight'"):
        train(cfg | {"run_dir": str(tmp_path / "none")})
    assert not (tmp_path / "none").exists()
