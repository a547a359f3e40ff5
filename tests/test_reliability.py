"""Reliability: untrusted and broken checkpoints, bad arguments caught before any work, interrupted
batches and writes, and training faults (NaN/Inf steps rolled back, a full disk while checkpointing,
Ctrl-C, a changed config on resume). Every user error is one line on stderr and a non-zero exit."""

from __future__ import annotations

import errno
import os
import signal
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

import restorekit.inference
import restorekit.inference.restore
import restorekit.io
from restorekit.checkpoints import read_checkpoint, save_checkpoint
from restorekit.cli import main
from restorekit.convert import read_pth
from restorekit.errors import RestoreKitError
from restorekit.io.files import atomic_write
from restorekit.io import read_image
from restorekit.models.dncnn import DnCNN
from restorekit.models.registry import create_model, register_model
from restorekit.train import train

TINY = "rk-tiny-dncnn"


def _tiny_dncnn(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=3, features=8, batch_norm=False, bias=True)


class _Multiple8(nn.Module):
    """A tiny DnCNN that refuses inputs whose sides are not multiples of 8 (as U-Nets do)."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.net = _tiny_dncnn(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, f"not padded: {tuple(x.shape)}"
        return self.net(x)


class _FaultProbe(nn.Module):
    """A tiny DnCNN with BatchNorm whose training forward number k misbehaves as ``PLAN[k]`` says:
    "grad" (finite loss, NaN gradients), "bn" (NaN input: NaN loss and NaN BatchNorm statistics),
    "weights" (the weights themselves become NaN), "sigint" (Ctrl-C arrives)."""

    PLAN: dict[int, str] = {}

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.net = DnCNN(channels, depth=3, features=8, batch_norm=True, bias=False)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.net(x)
        self.calls += 1
        fault = self.PLAN.get(self.calls)
        if fault == "bn":
            x = x * float("nan")
        elif fault == "weights":
            with torch.no_grad():
                next(self.net.parameters()).fill_(float("nan"))
        elif fault == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        out = self.net(x)
        if fault == "grad":
            out.register_hook(lambda g: g * float("nan"))
        return out


for _name, _factory, _meta in ((TINY, _tiny_dncnn, {}), ("rk-tiny-m8", _Multiple8, {"size_multiple": 8}),
                               ("rk-fault-probe", _FaultProbe, {})):
    try:
        register_model(_name, family="dncnn", task="denoise", channels=1, **_meta)(_factory)
    except ValueError:  # registered by another test module
        pass


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str) -> str:
    """The one line of stderr that is not a progress bar (tqdm's \r-redrawn lines)."""
    assert code != 0
    lines = [line for line in err.split("\n") if line and "\r" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.safetensors", create_model(TINY))


@pytest.fixture
def gray_images(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray((rng.random((14 + i, 17)) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


# --------------------------------------------------------------------------- untrusted checkpoints


class _Payload:
    """Unpickling this calls open(path, "w"): it creates a file, as real malware would run code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil_files(tmp_path: Path, marker: Path) -> list[Path]:
    zipped = tmp_path / "evil.pth"
    torch.save({"state_dict": {"body.0.weight": torch.zeros(1)}, "extra": _Payload(marker)}, zipped)
    legacy = tmp_path / "evil-legacy.pth"
    torch.save({"body.0.weight": _Payload(marker)}, legacy, _use_new_zipfile_serialization=False)
    return [zipped, legacy]


def test_the_payload_is_real(tmp_path) -> None:
    marker = tmp_path / "control-ran"
    (path, _) = _evil_files(tmp_path, marker)
    torch.load(path, weights_only=False)  # what restorekit never does
    assert marker.exists(), "the payload must work, or the refusal tests below prove nothing"


def test_code_executing_pickles_are_refused_and_never_run(tmp_path, capsys, gray_images) -> None:
    marker = tmp_path / "payload-ran"
    for evil in _evil_files(tmp_path, marker):
        with pytest.raises(RestoreKitError) as info:
            read_pth(evil)
        message = str(info.value)
        assert message.startswith(f"{evil}: refused") and "execute code" in message and "weights_only" in message
        assert "\n" not in message and "GLOBAL io.open" in message, message  # says which object
        assert "weights_only=False" not in message, "no advice to turn the protection off"
        dst = tmp_path / "converted.safetensors"
        code, _, err = run_cli(capsys, "convert", evil, dst)
        assert "refused" in one_line_error(code, err) and not dst.exists()
        out = tmp_path / "restored"
        code, _, err = run_cli(capsys, "restore", gray_images, "-o", out, "--weights", evil)
        assert "refused" in one_line_error(code, err) and not out.exists()
    assert not marker.exists(), "the payload ran"


def _kair_pth(path: Path, model: nn.Module) -> Path:
    torch.save({k.replace("body.", "model."): v for k, v in model.state_dict().items()}, path)
    return path


def test_broken_and_mismatched_checkpoints_name_the_problem(tmp_path, capsys, gray_images) -> None:
    torch.manual_seed(0)
    s_folded = create_model("dncnn-s-folded")
    good = save_checkpoint(tmp_path / "s-folded.safetensors", s_folded)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    from safetensors.torch import save_file

    unknown_arch = tmp_path / "unknown-arch.safetensors"
    save_file({k: v.contiguous() for k, v in s_folded.state_dict().items()}, str(unknown_arch),
              metadata={"restorekit": '{"arch": "no-such-net", "args": {}}'})
    bad_json = tmp_path / "bad-json.safetensors"
    save_file({"w": torch.zeros(2)}, str(bad_json), metadata={"restorekit": "{not json"})
    pth = _kair_pth(tmp_path / "kair.pth", s_folded)
    missing_record = tmp_path / "missing-record.pth"
    with zipfile.ZipFile(pth) as zin, zipfile.ZipFile(missing_record, "w") as zout:
        for item in zin.namelist():
            if not item.endswith("/data/0"):
                zout.writestr(item, zin.read(item))

    cases = [
        (["--weights", truncated], [str(truncated), "not a readable safetensors checkpoint"]),
        (["--weights", unknown_arch], [str(unknown_arch), "'no-such-net' cannot be built", "unknown model"]),
        (["--weights", bad_json], [str(bad_json), "corrupted metadata"]),
        (["--weights", missing_record], [str(missing_record), "failed locating file", "data/0"]),
        (["--model", "dncnn-b-folded", "--weights", good], [str(good), "holds dncnn-s-folded, not dncnn-b-folded"]),
        (["--model", "dncnn-b-folded", "--weights", pth], [str(pth), "does not fit dncnn-b-folded", "missing"]),
    ]
    reads: list[Path] = []
    original = restorekit.io.read_image

    def spy(path, *args, **kwargs):
        reads.append(path)
        return original(path, *args, **kwargs)

    restorekit.io.read_image = spy
    try:
        for extra, expected in cases:
            out = tmp_path / "out"
            code, _, err = run_cli(capsys, "restore", gray_images, "-o", out, *extra)
            err = one_line_error(code, err)
            assert all(text in err for text in expected), (expected, err)
            assert not out.exists()
    finally:
        restorekit.io.read_image = original
    assert not reads, "a bad checkpoint must fail before any image is read"
    code, _, err = run_cli(capsys, "info", bad_json)
    assert "corrupted metadata" in one_line_error(code, err)
    code, _, err = run_cli(capsys, "convert", missing_record, tmp_path / "c.safetensors")
    assert "failed locating file" in one_line_error(code, err)

    # files whose layout looks right but whose contents are not: the converters' assumptions fail
    import h5py

    flat = tmp_path / "flat.pth"
    torch.save({f"model.{2 * i}.{kind}": torch.zeros(3) for i in range(17) for kind in ("weight", "bias")}, flat)
    odd_mat = tmp_path / "odd.mat"
    with h5py.File(odd_mat, "w") as f:
        f.create_dataset("net/layers", data=np.zeros((3, 1)))
    not_mat = tmp_path / "text.mat"
    not_mat.write_text("MATLAB 5.0 MAT-file")
    for bad, expected in ((flat, "malformed checkpoint: the kair-dncnn converter"),
                          (odd_mat, "malformed checkpoint: the matconvnet-dncnn converter"),
                          (not_mat, "not a MATLAB v7.3 (HDF5) file")):
        code, _, err = run_cli(capsys, "convert", bad, tmp_path / "c.safetensors")
        assert expected in one_line_error(code, err) and str(bad) in err
    assert not (tmp_path / "c.safetensors").exists()


# --------------------------------------------------------------------------- bad arguments, before any work

BAD_RESTORE_ARGS = [
    (["--model", "dncnn-zz"], "did you mean"),
    (["--sigma", "300"], "outside 0..255"),
    (["--sigma", "-1"], "outside 0..255"),
    (["--tile", "16", "--overlap", "20"], "use tile >= 40 or overlap <= 8"),
    (["--tile", "0"], "tile must be a positive integer"),
    (["--tile", "-64"], "tile must be a positive integer"),
    (["--overlap", "-2"], "overlap must be a non-negative integer"),
    (["--tile-batch", "0"], "tile_batch must be a positive integer"),
    (["--precision", "fp8"], "invalid choice: 'fp8' (choose from"),
    (["--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda, mps"),
    (["--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
    (["--tile", "big"], "invalid int value: 'big'"),
    (["--bit-depth", "12"], "invalid choice: 12 (choose from"),
    (["--max-pixels", "-1"], "--max-pixels must be a positive number"),
    (["--task", "sr-x2"], "single-task"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


@pytest.mark.parametrize("extra,expected", BAD_RESTORE_ARGS, ids=[" ".join(a) for a, _ in BAD_RESTORE_ARGS])
def test_bad_restore_arguments_fail_before_any_work(extra, expected, tmp_path, capsys, monkeypatch, weights,
                                                     gray_images) -> None:
    reads: list[Path] = []
    monkeypatch.setattr(restorekit.io, "read_image", lambda path, *a, **k: reads.append(path))
    out = tmp_path / "out"
    args = ["restore", gray_images, "-o", out]
    if "--model" not in extra:
        args += ["--weights", weights]
    code, _, err = run_cli(capsys, *args, *extra)
    assert expected in one_line_error(code, err), err
    assert not reads and not out.exists()


def test_cuda_device_without_cuda_is_refused(tmp_path, capsys, weights, gray_images) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_cli(capsys, "restore", gray_images, "-o", tmp_path / "o", "--weights", weights, "--device", "cuda")
    assert "CUDA is not available on this machine; use 'cpu' or 'auto'" in one_line_error(code, err)
    assert not (tmp_path / "o").exists()


def test_tile_smaller_than_the_size_multiple_is_refused_before_reading(tmp_path, capsys, monkeypatch, gray_images) -> None:
    weights = save_checkpoint(tmp_path / "m8.safetensors", create_model("rk-tiny-m8"))
    reads: list[Path] = []
    monkeypatch.setattr(restorekit.io, "read_image", lambda path, *a, **k: reads.append(path))
    code, _, err = run_cli(capsys, "restore", gray_images, "-o", tmp_path / "o", "--weights", weights, "--tile", "4")
    assert "size multiple 8; use a tile >= 8" in one_line_error(code, err)
    code, _, err = run_cli(capsys, "restore", gray_images, "-o", tmp_path / "o", "--weights", weights,
                           "--tile", "20", "--overlap", "10")
    assert "rounded down to 16" in one_line_error(code, err) and "use tile >= 24 or overlap <= 8" in err
    assert not reads and not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra,expected", [
    (["--sigma", "256"], "outside 0..255"),
    (["--max-pixels", "-5"], "--max-pixels"),
    (["--out", "results.txt"], "written as .json or .csv"),
    (["--device", "tpu"], "unknown device"),
    (["--tile", "8", "--overlap", "5"], "use tile >= 10 or overlap <= 4"),
])
def test_bad_eval_arguments_fail_before_evaluating(extra, expected, tmp_path, capsys, weights, gray_images,
                                                   monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(restorekit.inference, "restore_tensor", lambda *a, **k: pytest.fail("evaluated"))
    code, _, err = run_cli(capsys, "eval", "--weights", weights, "--data", gray_images, "--sigma", "25", *extra)
    assert expected in one_line_error(code, err)
    assert not (tmp_path / "results.txt").exists()


def test_colour_file_in_a_gray_batch_comes_back_colour(tmp_path, capsys, weights, gray_images) -> None:
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(gray_images / "colour.png")
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "restore", gray_images, "-o", out, "--weights", weights)
    assert code == 0
    assert "restored 6, skipped 0, failed 0" in stdout
    assert Image.open(out / "colour.png").mode == "RGB" and Image.open(out / "im0.png").mode == "L"


def test_outputs_that_would_collide_are_refused_before_work(tmp_path, capsys, weights, gray_images) -> None:
    Image.open(gray_images / "im0.png").save(gray_images / "im0.gif")  # GIF is read, written as PNG: im0.png
    code, _, err = run_cli(capsys, "restore", gray_images, "-o", tmp_path / "out", "--weights", weights)
    assert "would both be written to" in one_line_error(code, err) and not (tmp_path / "out").exists()
    code, _, err = run_cli(capsys, "restore", gray_images / "im1.png", "-o", tmp_path / "x.gif", "--weights", weights)
    assert "cannot write '.gif' files" in one_line_error(code, err)


def test_tiny_images_go_through_padding_to_the_size_multiple(tmp_path, capsys) -> None:
    weights = save_checkpoint(tmp_path / "m8.safetensors", create_model("rk-tiny-m8"))
    folder = tmp_path / "tiny"
    folder.mkdir()
    sizes = {"a.png": (1, 1), "b.png": (1, 9), "c.png": (3, 5), "d.png": (9, 17)}
    for name, (h, w) in sizes.items():
        Image.fromarray(np.full((h, w), 100, np.uint8)).save(folder / name)
    for extra in ([], ["--tile", "8"], ["--tile", "16", "--overlap", "6"]):
        out = tmp_path / f"out{len(extra)}"
        code, stdout, err = run_cli(capsys, "restore", folder, "-o", out, "--weights", weights, *extra)
        assert code == 0, stdout + err
        for name, size in sizes.items():
            assert read_image(out / name).pixels.shape[:2] == size


# --------------------------------------------------------------------------- interrupted batches and writes


def _interrupt_on_call(monkeypatch, n: int, action) -> None:
    real = restorekit.inference.restore.restore_tensor
    calls = {"n": 0}

    def restore_tensor(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(restorekit.inference.restore, "restore_tensor", restore_tensor)


def _check_interrupted_batch(code: int, err: str, out: Path, done: int, total: int) -> None:
    assert code == 130
    err = one_line_error(code, err)
    assert f"interrupted after {done} of {total} images" in err and "--skip-existing" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"im{i}.png" for i in range(done)], "finished outputs kept, nothing else (no temporaries)"
    for name in names:
        assert read_image(out / name).pixels.shape[:2] == read_image(out.parent / "imgs" / name).pixels.shape[:2]


def test_ctrl_c_mid_batch_keeps_finished_outputs_and_says_how_to_continue(tmp_path, capsys, monkeypatch, weights,
                                                                         gray_images) -> None:
    def ctrl_c():
        raise KeyboardInterrupt

    _interrupt_on_call(monkeypatch, 3, ctrl_c)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "restore", gray_images, "-o", out, "--weights", weights)
    _check_interrupted_batch(code, err, out, 2, 5)
    monkeypatch.undo()
    code, stdout, _ = run_cli(capsys, "restore", gray_images, "-o", out, "--weights", weights, "--skip-existing")
    assert code == 0 and "restored 3, skipped 2, failed 0" in stdout
    assert sorted(p.name for p in out.iterdir()) == [f"im{i}.png" for i in range(5)]


def test_sigterm_mid_batch_is_handled_like_ctrl_c(tmp_path, capsys, monkeypatch, weights, gray_images) -> None:
    received = []
    previous = signal.signal(signal.SIGTERM, lambda *a: received.append(a))  # if the CLI does not take it over
    try:
        _interrupt_on_call(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
        out = tmp_path / "out"
        code, _, err = run_cli(capsys, "restore", gray_images, "-o", out, "--weights", weights)
        assert not received, "the CLI handles SIGTERM during a command"
        _check_interrupted_batch(code, err, out, 1, 5)
        assert signal.getsignal(signal.SIGTERM) is not None and not received
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("fault", ["ctrl-c", "disk-full"])
def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, fault) -> None:
    target = tmp_path / "report.json"
    target.write_text('{"old": true}')

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"new": tr')  # half written
        if fault == "ctrl-c":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    expected = KeyboardInterrupt if fault == "ctrl-c" else RestoreKitError
    with pytest.raises(expected) as info:
        atomic_write(target, half_then_fail)
    if fault == "disk-full":
        assert str(info.value) == f"{target}: cannot write: No space left on device"
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with pytest.raises(RestoreKitError, match="already exists; overwrite=True replaces it"):
        atomic_write(target, lambda p: p.write_text("x"), overwrite=False)
    assert target.read_text() == '{"old": true}' and len(list(tmp_path.iterdir())) == 1


# --------------------------------------------------------------------------- training faults


def _train_config(tmp: Path, model: str, **train_opts) -> dict:
    data = tmp / "train-images"
    if not data.exists():
        data.mkdir()
        rng = np.random.default_rng(0)
        for i in range(8):
            small = (rng.random((4, 4)) * 255).astype(np.uint8)
            Image.fromarray(small).resize((24, 24), Image.BICUBIC).save(data / f"t{i}.png")
    return {
        "name": "reliability",
        "model": {"name": model},
        "data": {"train": {"root": str(data), "patch": {"size": 16},
                           "degradation": {"name": "gaussian-noise", "params": {"sigma": 25}}}},
        "loss": "mse",
        "optim": {"lr": 3e-3},
        "train": {"steps": 12, "batch_size": 4, "val_every": 1000, "val_unit": "step", "log_every": 1,
                  "progress": False, "tensorboard": False, "plot": False, **train_opts},
    }


def _finite(state: dict) -> bool:
    tensors = list(state["model"].values())
    for per_param in state["optimizer"]["state"].values():
        tensors += [v for v in per_param.values() if isinstance(v, torch.Tensor)]
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


def test_nan_steps_are_skipped_and_polluted_state_rolled_back(tmp_path) -> None:
    _FaultProbe.PLAN = {3: "grad", 6: "bn", 10: "weights"}
    run = tmp_path / "run"
    train(_train_config(tmp_path, "rk-fault-probe", checkpoint_every=4, max_bad_steps=3) | {"run_dir": str(run)})
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 12 and _finite(state), "NaN gradients, statistics or weights reached the saved state"
    running = [v for k, v in state["model"].items() if "running" in k]
    assert running and all(torch.isfinite(v).all() for v in running)
    log = (run / "train.log").read_text()
    assert log.count("update skipped") == 3
    assert "step 10: weights or optimiser state became non-finite; rolled back to the state saved at step 8" in log
    tensors, meta = read_checkpoint(run / "last.safetensors")
    assert meta["step"] == 12 and all(torch.isfinite(t).all() for t in tensors.values())


def test_on_nan_stop_saves_the_last_good_state(tmp_path) -> None:
    _FaultProbe.PLAN = {6: "weights"}
    run = tmp_path / "run"
    cfg = _train_config(tmp_path, "rk-fault-probe", checkpoint_every=4, on_nan="stop") | {"run_dir": str(run)}
    with pytest.raises(RestoreKitError, match="stopped at step 6: 1 non-finite step"):
        train(cfg)
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 6 and _finite(state)
    assert "rolled back to the state saved at step 4" in (run / "train.log").read_text()


def _fail_on_call(n: int, real):
    """A writer that, on call ``n``, writes part of its file and then finds the disk full."""
    calls = {"n": 0}

    def write(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            with open(path, "wb") as f:
                f.write(b"\0" * 64)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, path, *args, **kwargs)

    return write


def _checkpoints_readable(run: Path) -> tuple[int, int]:
    _, meta = read_checkpoint(run / "last.safetensors")
    state = torch.load(run / "state.pt", weights_only=True)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return int(meta["step"]), int(state["step"])


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    import restorekit.checkpoints

    run = tmp_path / "run"
    cfg = _train_config(tmp_path, TINY, steps=4, checkpoint_every=2) | {"run_dir": str(run)}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(restorekit.checkpoints, "save_file", _fail_on_call(2, restorekit.checkpoints.save_file))
    code, _, err = run_cli(capsys, "train", tmp_path / "cfg.yaml")
    err = one_line_error(code, err)
    assert "checkpoint at step 4 not saved" in err and "No space left on device" in err
    assert "previous checkpoint files are intact" in err and f"--resume {run}" in err
    assert _checkpoints_readable(run) == (2, 2)

    # the state file fails this time: last.safetensors is new, state.pt the previous one; both whole
    monkeypatch.undo()
    monkeypatch.setattr(torch, "save", _fail_on_call(1, torch.save))
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert "state.pt: cannot write: No space left on device" in one_line_error(code, err)
    monkeypatch.undo()
    assert _checkpoints_readable(run) == (4, 2)
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert code == 0, err
    assert _checkpoints_readable(run) == (4, 4)


def test_ctrl_c_in_training_saves_a_resumable_state_and_a_changed_config_is_refused(tmp_path, capsys) -> None:
    _FaultProbe.PLAN = {5: "sigint"}
    run = tmp_path / "run"
    cfg = _train_config(tmp_path, "rk-fault-probe", steps=10) | {"run_dir": str(run)}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = run_cli(capsys, "train", tmp_path / "cfg.yaml")
    assert code == 130 and "Traceback" not in err, "stopped by Ctrl-C: saved, and the shell sees 128 + SIGINT"
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 5
    assert f"stopped by signal at step 5; resume with: restorekit train --resume {run}" in (run / "train.log").read_text()

    code, _, err = run_cli(capsys, "train", "--resume", run, "--set", "optim.lr=0.01", "--set", "train.batch_size=2")
    err = one_line_error(code, err)
    assert "2 change(s)" in err and "optim.lr: 0.003 -> 0.01" in err and "train.batch_size: 4 -> 2" in err
    assert "--allow-config-change" in err
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 5, "a refused resume changes nothing"

    _FaultProbe.PLAN = {}
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert code == 0, err
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 10


def test_existing_reports_are_not_overwritten_without_overwrite(tmp_path, capsys, weights, gray_images) -> None:
    existing = tmp_path / "rows.json"
    existing.write_text("{}")
    code, _, err = run_cli(capsys, "bench", "--models", TINY, "--json", existing)
    assert "rows.json: exists; pass --overwrite" in one_line_error(code, err) and existing.read_text() == "{}"
    code, _, err = run_cli(capsys, "eval", "--weights", weights, "--data", gray_images, "--sigma", "25", "--out", existing)
    assert "pass --overwrite" in one_line_error(code, err) and existing.read_text() == "{}"
