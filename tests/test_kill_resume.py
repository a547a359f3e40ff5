"""A training run SIGKILLed at seeded random points, three times, and resumed each time: after every kill
each checkpoint file in the run folder loads (``last.safetensors`` through read_checkpoint, ``state.pt``
with ``torch.load(weights_only=True)``), and the resumed run completes with the same weights as a run
never interrupted. And ``restorekit train`` stopped by Ctrl-C (SIGINT): it saves, exits 130, and
``restorekit train --resume`` completes it with those same weights.

Each run is its own OS process (OMP_NUM_THREADS=1), forked from a multiprocessing fork server that has
imported torch once: a fresh interpreter pays ~10 s of imports on a busy machine, per kill."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from restorekit.checkpoints import load, read_checkpoint
from restorekit.models.dncnn import DnCNN
from restorekit.models.registry import register_model

MODEL = "rk-kill-dncnn"
STEPS = 40
KILLS = 3
SEED = 20240611


def _kill_dncnn(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=4, features=8, batch_norm=True, bias=False)


try:
    register_model(MODEL, family="dncnn", task="denoise", channels=1)(_kill_dncnn)
except ValueError:
    pass


def _slow_disk() -> None:
    """Checkpoint files written in three chunks 5 ms apart, as on a slow disk: a kill then often lands
    while a file is half written (tiny files are otherwise written in microseconds)."""
    import io

    import safetensors.torch

    import restorekit.checkpoints

    def write_slowly(data: bytes, path) -> None:
        with open(path, "wb") as f:
            third = len(data) // 3 + 1
            for start in range(0, len(data), third):
                f.write(data[start:start + third])
                f.flush()
                time.sleep(0.005)

    def save_file(tensors, path, metadata=None):
        write_slowly(safetensors.torch.save(tensors, metadata=metadata), path)

    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        write_slowly(buf.getvalue(), path)

    restorekit.checkpoints.save_file = save_file
    torch.save = save


def _run(config: dict | None, resume: str | None, log: str, slow: bool) -> None:
    """The child process: train (or resume) with its output in ``log``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.set_num_threads(1)
    if slow:
        _slow_disk()
    from restorekit.train import train

    train(config, resume=resume)


def _cli(argv: list[str], log: str) -> None:
    """The child process: the ``restorekit`` command, its exit status the process's."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.set_num_threads(1)
    from restorekit.cli import main

    sys.exit(main(argv))


def _config(tmp: Path, run_dir: Path) -> dict:
    data = tmp / "data"
    if not data.exists():
        data.mkdir()
        rng = np.random.default_rng(0)
        for i in range(8):
            small = (rng.random((4, 4)) * 255).astype(np.uint8)
            Image.fromarray(small).resize((24, 24), Image.BICUBIC).save(data / f"t{i}.png")
    return {
        "name": "kill",
        "run_dir": str(run_dir),
        "model": {"name": MODEL},
        "data": {"train": {"root": str(data), "patch": {"size": 16}, "augment": "x8",
                           "degradation": {"name": "gaussian-noise", "params": {"sigma": 25}}}},
        "loss": "mse",
        "optim": {"lr": 3e-3},
        # a checkpoint after every step: the kills often land inside a write
        "train": {"steps": STEPS, "batch_size": 4, "checkpoint_every": 1, "val_every": 10_000, "val_unit": "step",
                  "log_every": 1, "ema": 0.9, "seed": 3, "progress": False, "tensorboard": False, "plot": False},
    }


def _logged_step(run: Path) -> int:
    try:
        lines = (run / "metrics.csv").read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines[1:]):
        head = line.split(",", 1)[0]
        if head.isdigit():
            return int(head)
    return 0


def _check_every_checkpoint_loads(run: Path) -> int:
    """Every checkpoint file a reader would pick up is whole; returns the saved step."""
    visible = sorted(p.name for p in run.iterdir() if not p.name.startswith("."))
    for name in visible:
        if name.endswith(".safetensors"):
            tensors, meta = read_checkpoint(run / name)
            assert tensors and meta["arch"] == MODEL, name
    state = torch.load(run / "state.pt", weights_only=True)
    _, meta = read_checkpoint(run / "last.safetensors")
    load(run / "last.safetensors")
    stray = [p.name for p in run.iterdir() if p.name.startswith(".") and ".tmp-" not in p.name]
    assert not stray, stray  # only our own hidden temporaries may survive a SIGKILL
    return int(state["step"])


@pytest.fixture(scope="module")
def fork_server():
    """A multiprocessing context whose fork server has torch and restorekit imported (OMP_NUM_THREADS=1)."""
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torch._dynamo", "restorekit.train", "restorekit.checkpoints"])
    here = str(Path(__file__).resolve().parent)
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)  # the children import this module to find _run
    try:
        yield ctx
    finally:
        if added:
            sys.path.remove(here)
        from multiprocessing import forkserver

        server = forkserver._forkserver  # the fork server this test started: end it now, not at exit
        pid = getattr(server, "_forkserver_pid", None)
        if pid is not None and hasattr(server, "_stop"):
            os.kill(pid, signal.SIGKILL)
            server._stop()
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old


def _start(ctx, config: dict | None, resume: Path | None, log: Path, slow: bool = True):
    proc = ctx.Process(target=_run, args=(config, str(resume) if resume else None, str(log), slow), daemon=True)
    proc.start()
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, fork_server) -> dict:
    """The final state of the run never interrupted."""
    tmp = tmp_path_factory.mktemp("reference")
    log = tmp / "children.log"
    proc = _start(fork_server, _config(tmp, tmp / "ref"), None, log, slow=False)
    proc.join(timeout=240)
    assert proc.exitcode == 0, log.read_text()
    return torch.load(tmp / "ref" / "state.pt", weights_only=True)


def _assert_same_weights(a: dict, b: dict) -> None:
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][key], b["ema"]["module"][key]), key


def test_sigkill_at_random_points_then_resume_completes_exactly(tmp_path: Path, fork_server, reference) -> None:
    rng = random.Random(SEED)
    run = tmp_path / "run"
    log = tmp_path / "children.log"
    config = _config(tmp_path, run)
    saved_steps = []
    proc = _start(fork_server, config, None, log)
    for kill in range(KILLS):
        start = _logged_step(run)
        target = min(start + rng.randint(2, 7), STEPS - 6)
        extra_delay = rng.uniform(0.0, 0.04)  # a checkpoint is being written (~45 ms) just after a step is logged
        deadline = time.time() + 120
        while _logged_step(run) < target and proc.is_alive() and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(extra_delay)
        assert proc.is_alive(), f"kill {kill}: the run ended before it could be killed\n{log.read_text()}"
        proc.kill()  # SIGKILL
        proc.join()
        assert proc.exitcode == -9
        step = _check_every_checkpoint_loads(run)
        assert step >= 1 and step <= _logged_step(run) + 1
        saved_steps.append(step)
        proc = _start(fork_server, None, run, log)
    proc.join(timeout=240)
    assert proc.exitcode == 0, log.read_text()
    assert _check_every_checkpoint_loads(run) == STEPS
    assert len(set(saved_steps)) == KILLS and saved_steps == sorted(saved_steps), saved_steps
    steps = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, STEPS + 1)), "each step logged once across the kills"
    _assert_same_weights(reference, torch.load(run / "state.pt", weights_only=True))  # as never interrupted


def test_ctrl_c_saves_exits_130_and_resume_completes_exactly(tmp_path: Path, fork_server, reference) -> None:
    run = tmp_path / "run"
    log = tmp_path / "children.log"
    config = tmp_path / "kill.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, run)))
    proc = fork_server.Process(target=_cli, args=(["train", str(config)], str(log)), daemon=True)
    proc.start()
    deadline = time.time() + 120
    while not (run / "state.pt").exists() and proc.is_alive() and time.time() < deadline:
        time.sleep(0.002)
    assert proc.is_alive(), f"the run ended before Ctrl-C\n{log.read_text()}"
    os.kill(proc.pid, signal.SIGINT)
    proc.join(timeout=120)
    assert proc.exitcode == 130, log.read_text()
    stopped_at = _check_every_checkpoint_loads(run)
    assert 1 <= stopped_at < STEPS and _logged_step(run) == stopped_at  # saved at the step it stopped
    text = log.read_text()
    assert f"stopped by signal at step {stopped_at}" in text and f"restorekit train --resume {run}" in text

    proc = fork_server.Process(target=_cli, args=(["train", "--resume", str(run)], str(log)), daemon=True)
    proc.start()
    proc.join(timeout=240)
    assert proc.exitcode == 0, log.read_text()
    assert _check_every_checkpoint_loads(run) == STEPS
    _assert_same_weights(reference, torch.load(run / "state.pt", weights_only=True))
