"""Speed and feedback (issue #19): automatic precision, progress inside an image, MP/s, outputs that
could not be written refused before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import restorekit.inference.batch as batch
import restorekit.inference.prepare as prepare
import restorekit.io
from restorekit.checkpoints import save_checkpoint
from restorekit.cli import main
from restorekit.errors import RestoreKitError
from restorekit.inference import (
    InferenceOptions,
    describe_precision,
    plan_tiles,
    resolve_precision,
    restore_tensor,
)
from restorekit.models import create_model, model_info
from restorekit.models.dncnn import DnCNN

from conftest import shared_path

CPU = torch.device("cpu")
NATIVE = frozenset({"avx512f", "avx512_bf16", "amx_bf16"})
NO_BF16 = frozenset({"avx2", "avx512f"})  # AVX-512 without its bf16 extension: bf16 would be emulated


def _prepared(model, **options):  # type: ignore[no-untyped-def]
    from restorekit.inference import prepare_model

    return prepare_model(model, InferenceOptions(device="cpu", **options))


def _dncnn(depth: int = 5, channels: int = 1) -> DnCNN:
    torch.manual_seed(0)
    model = DnCNN(channels, depth=depth, features=8, batch_norm=False, bias=True)
    model.info = model_info("dncnn-s", channels=channels)  # type: ignore[assignment]
    return model


# --------------------------------------------------------------------------------------------------
# automatic precision


def test_auto_runs_bf16_channels_last_where_the_cpu_has_native_bf16(monkeypatch) -> None:
    auto = InferenceOptions(precision="auto")
    monkeypatch.setattr(prepare, "cpu_flags", lambda: NATIVE)
    assert resolve_precision(auto, CPU) == ("bf16", True)
    said = describe_precision(auto, CPU)
    assert said.startswith("bf16 + channels_last (auto: this CPU has amx_bf16/avx512_bf16") and "--precision fp32" in said
    assert resolve_precision(InferenceOptions(precision="fp32"), CPU) == ("fp32", False)  # the opt-out
    assert "--precision auto would run bf16" in describe_precision(InferenceOptions(precision="fp32"), CPU)

    monkeypatch.setattr(prepare, "cpu_flags", lambda: NO_BF16)
    assert resolve_precision(auto, CPU) == ("fp32", False)
    assert describe_precision(auto, CPU) == "fp32 (auto: this CPU has no native bf16 (AMX or AVX512-BF16))"
    assert resolve_precision(InferenceOptions(precision="bf16"), CPU) == ("bf16", True)  # asked: runs, emulated
    assert resolve_precision(InferenceOptions(precision="auto", channels_last=True), CPU) == ("fp32", True)
    assert resolve_precision(auto, torch.device("mps")) == ("fp32", False)


@pytest.mark.parametrize("capability,expected", [((9, 0), ("bf16", True)), ((8, 0), ("bf16", True)),
                                                 ((7, 5), ("fp32", False))])
def test_auto_on_cuda_follows_native_bf16(monkeypatch, capability, expected) -> None:
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    assert resolve_precision(InferenceOptions(precision="auto"), torch.device("cuda", 0)) == expected
    assert describe_precision(InferenceOptions(precision="auto"), torch.device("cuda", 0)).startswith(
        "bf16 + channels_last (auto: Test GPU has native bf16" if expected[0] == "bf16" else
        "fp32 (auto: Test GPU has no native bf16")


def test_in_bf16_the_convolutions_that_read_the_image_stay_fp32() -> None:
    model = _dncnn(depth=4, channels=3)
    wrapper = _prepared(model, precision="bf16")
    convs = [m for m in wrapper.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.weight.dtype for c in convs] == [torch.float32, torch.bfloat16, torch.bfloat16, torch.bfloat16]
    assert [c.weight.dtype for c in model.modules() if isinstance(c, torch.nn.Conv2d)] == [torch.float32] * 4
    x = torch.rand(1, 3, 16, 16)
    seen = []
    convs[0].register_forward_hook(lambda m, i, o: seen.append((i[0].dtype, o.dtype)))
    convs[1].register_forward_hook(lambda m, i, o: seen.append((i[0].dtype, o.dtype)))
    with torch.inference_mode():
        wrapper(x)
    assert seen == [(torch.float32, torch.float32), (torch.float32, torch.bfloat16)]  # the rest under autocast


def test_cpu_flags_are_read_from_proc_cpuinfo() -> None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo on this system")
    first = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
    assert prepare.cpu_flags() == frozenset(first.split(":", 1)[1].split())


def test_auto_stays_within_002_db_of_fp32_on_a_real_image(monkeypatch) -> None:
    from restorekit.io import image_to_tensor, read_image
    from restorekit.metrics import psnr
    from restorekit.pretrained import resolve_model

    path = shared_path("data", "denoise", "Kodak24", "kodim01.png")
    clean = image_to_tensor(read_image(path, channels=3).pixels)[..., 122:378, 122:378]  # 256² centre crop
    noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    model = resolve_model(None, None, channels=3)  # the built-in default-color
    # bf16 as a native-bf16 CPU runs it; on other CPUs the same numbers, emulated (slower).
    monkeypatch.setattr(prepare, "cpu_flags", lambda: NATIVE)
    auto = InferenceOptions(precision="auto", device="cpu")
    assert resolve_precision(auto, CPU) == ("bf16", True)
    fp32 = restore_tensor(model, noisy, InferenceOptions(precision="fp32", device="cpu"))
    low = restore_tensor(model, noisy, auto)
    assert (low - fp32).abs().max() > 1e-4, "auto ran bf16: not the same numbers as fp32"
    gap = float(psnr(low, clean, protocol="dncnn")) - float(psnr(fp32, clean, protocol="dncnn"))
    assert abs(gap) < 0.02, gap
    assert float(psnr(fp32, clean, protocol="dncnn")) > float(psnr(noisy.clamp(0, 1), clean, protocol="dncnn")) + 5


# --------------------------------------------------------------------------------------------------
# progress inside an image


def _calls(model, x, **options) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    restore_tensor(model, x, InferenceOptions(device="cpu", progress=lambda done, total: calls.append((done, total)),
                                              **options))
    return calls


def test_progress_hears_tiles_done_up_to_the_total() -> None:
    model = _dncnn()
    x = torch.rand(1, 1, 70, 50)
    tiles = plan_tiles(70, 50, tile=32, overlap=15).count
    calls = _calls(model, x, tile=32, tile_batch=2)
    assert tiles > 4 and calls[0] == (0, tiles) and calls[-1] == (tiles, tiles)
    assert [d for d, _ in calls] == sorted({d for d, _ in calls}), "strictly increasing"
    assert {t for _, t in calls} == {tiles} and len(calls) == 1 + -(-tiles // 2)  # the start, then each pass
    assert _calls(model, x) == [(0, 1), (1, 1)]  # whole image: one pass
    assert _calls(model, torch.rand(5, 1, 20, 20), tile_batch=2) == [(0, 5), (2, 5), (4, 5), (5, 5)]


def test_progress_of_the_chop_is_one_step() -> None:
    torch.manual_seed(0)
    ipt = create_model("ipt-denoise", patch_size=12, patch_dim=3, n_feats=8, num_heads=2, num_layers=1)
    assert _calls(ipt, torch.rand(1, 3, 30, 26)) == [(0, 1), (1, 1)]


def test_large_images_are_tiled_automatically_only_where_that_is_exact(monkeypatch) -> None:
    monkeypatch.setattr(batch, "AUTO_TILE_PIXELS", 1000)
    monkeypatch.setattr(batch, "AUTO_TILE", 32)
    small_field, wide_field = _dncnn(depth=5), _dncnn(depth=30)  # bounds 5 and 30 (> the exact 24)
    options = InferenceOptions(device="cpu")
    assert batch.auto_tile(small_field, options, 40, 30).tile == 32
    assert batch.auto_tile(small_field, options, 30, 30) is options  # 900 pixels: whole
    assert batch.auto_tile(small_field, InferenceOptions(tile=500), 40, 30).tile == 500  # the caller's tile
    assert batch.auto_tile(wide_field, options, 40, 30) is options
    x = torch.rand(1, 1, 60, 45)
    tiled = restore_tensor(small_field, x, batch.auto_tile(small_field, options, 60, 45))
    torch.testing.assert_close(tiled, restore_tensor(small_field, x, options), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------
# the CLI: MP/s, tiles, what ran


@pytest.fixture
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    model = create_model("dncnn-s-folded")
    with torch.no_grad():  # near identity
        for p in model.parameters():
            p.mul_(0.01)
    return save_checkpoint(tmp_path / "w.safetensors", model)


def _image(path: Path, h: int, w: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(0).random((h, w)) * 255).astype(np.uint8)).save(path)
    return path


def test_cli_shows_tiles_and_reports_megapixels_per_second(tmp_path, capsys, weights) -> None:
    image = _image(tmp_path / "in" / "wide.png", 40, 150)  # tile 128, overlap 51: two tiles
    code = main(["restore", str(image), "-o", str(tmp_path / "out"), "--weights", str(weights), "--tile", "128"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "tiles:" in captured.err and "0/2" in captured.err  # the tile bar, below the image bar
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith("restored 1, skipped 0, failed 0 in ") and " MP/s)" in last
    assert "(auto: " in last  # which precision ran, and why
    code = main(["restore", str(image), "-o", str(tmp_path / "out"), "--weights", str(weights), "--tile", "128",
                 "--overwrite", "--precision", "fp32"])
    assert code == 0 and "MP/s), fp32 (" in capsys.readouterr().out


def test_batch_summary_rate_is_input_megapixels_per_second() -> None:
    report = batch.BatchReport(done=[Path("a.png")], seconds=2.0, megapixels=3.0, precision="fp32 (--precision fp32)")
    assert report.summary() == ("restored 1, skipped 0, failed 0 in 2.0 s (0.50 images/s, 1.50 MP/s), "
                                "fp32 (--precision fp32)")


def test_eval_defaults_to_fp32_and_says_so(tmp_path, capsys, weights) -> None:
    _image(tmp_path / "set" / "a.png", 20, 24)
    code = main(["eval", "--weights", str(weights), "--data", str(tmp_path / "set"), "--sigma", "25",
                 "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0 and "precision: fp32 (" in out
    import json

    assert json.loads((tmp_path / "r.json").read_text())["settings"]["inference"]["precision"] == "fp32"


# --------------------------------------------------------------------------------------------------
# outputs that could not be written, refused before any work


def _refused(capsys, monkeypatch, *argv: object) -> str:
    reads: list[object] = []
    monkeypatch.setattr(restorekit.io, "read_image", lambda path, *a, **k: reads.append(path))
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if line and "\r" not in line]
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert not reads, "refused before any image was read"
    return lines[0]


def test_output_under_a_file_is_refused_before_work(tmp_path, capsys, monkeypatch, weights) -> None:
    image = _image(tmp_path / "in" / "a.png", 12, 12)
    (tmp_path / "notes.txt").write_text("a file")
    err = _refused(capsys, monkeypatch, "restore", image, "-o", tmp_path / "notes.txt" / "out", "--weights", weights)
    assert "notes.txt: is a file, not a folder" in err


def test_sub_folder_where_a_file_is_is_refused_before_work(tmp_path, capsys, monkeypatch, weights) -> None:
    _image(tmp_path / "in" / "sub" / "a.png", 12, 12)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("a file")
    err = _refused(capsys, monkeypatch, "restore", tmp_path / "in", "-o", tmp_path / "out", "--recursive",
                   "--weights", weights)
    assert f"{tmp_path / 'out' / 'sub'}: is a file, not a folder" in err


def test_planned_output_that_is_a_folder_is_refused_before_work(tmp_path, capsys, monkeypatch, weights) -> None:
    image = _image(tmp_path / "in" / "a.png", 12, 12)
    (tmp_path / "out" / "a.png").mkdir(parents=True)
    err = _refused(capsys, monkeypatch, "restore", image, "-o", tmp_path / "out", "--weights", weights, "--overwrite")
    assert "a.png: is a folder" in err


def test_output_folder_that_is_not_writable_is_refused_before_work(tmp_path, capsys, monkeypatch, weights) -> None:
    # Root may write anywhere, so "not writable" is what os.access says.
    image = _image(tmp_path / "in" / "a.png", 12, 12)
    locked = tmp_path / "locked"
    locked.mkdir()
    real = batch.os.access
    monkeypatch.setattr(batch.os, "access", lambda path, mode, **k: Path(path) != locked and real(path, mode, **k))
    err = _refused(capsys, monkeypatch, "restore", image, "-o", locked / "new" / "out", "--weights", weights)
    assert f"{locked}: not writable" in err
    with pytest.raises(RestoreKitError, match="not writable"):
        batch.check_writable([batch.Job(image, locked / "a.png")])
    batch.check_writable([batch.Job(image, tmp_path / "fresh" / "deeper" / "a.png")])  # made on writing: fine
