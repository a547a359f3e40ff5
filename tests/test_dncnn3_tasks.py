"""DnCNN-3's three tasks in one network: SR runs on the bicubic-upscaled image, JPEG and denoising on the
image as is (Demo_test_DnCNN3.m), all through the one inference path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import restorekit as rk
from restorekit.cli import main
from restorekit.degradations.jpeg import jpeg_compress
from restorekit.degradations.sr import bicubic_downsample, bicubic_upsample
from restorekit.errors import RestoreKitError
from restorekit.inference import InferenceOptions, check_options, model_spec, receptive_radius, restore_tensor
from restorekit.io import image_to_tensor, read_image, write_image
from restorekit.metrics import psnr
from restorekit.models import model_info
from restorekit.models.dncnn import DnCNN

from conftest import shared_path

TASKS = ("denoise", "sr-x2", "sr-x3", "sr-x4", "jpeg")
CPU = {"device": "cpu"}


def _small_dncnn3(seed: int = 0) -> DnCNN:
    """A 5-layer folded DnCNN with DnCNN-3's metadata: the same inference path, 1/200 of the work."""
    torch.manual_seed(seed)
    model = DnCNN(1, depth=5, features=16, batch_norm=False, bias=True)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    model.info = model_info("dncnn3-folded")  # type: ignore[assignment]
    return model.eval()


def test_metadata_declares_the_tasks_their_scales_and_inputs() -> None:
    info = model_info("dncnn3-folded")
    assert info.tasks == TASKS and info.scales == (1, 2, 3, 4, 1)
    assert info.task_inputs == {"denoise": "", "sr-x2": "bicubic-up-2", "sr-x3": "bicubic-up-3",
                                "sr-x4": "bicubic-up-4", "jpeg": ""}
    model = _small_dncnn3()
    assert [model_spec(model, t).scale for t in TASKS] == [1, 2, 3, 4, 1]
    none = model_spec(model, None)  # no task: the model's main one, as before it had several
    assert (none.task, none.scale) == ("denoise", 1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_is_bicubic_upscaling_then_the_network(scale: int) -> None:
    model = _small_dncnn3()
    x = torch.rand(1, 1, 13, 17, generator=torch.Generator().manual_seed(scale))
    out = restore_tensor(model, x, InferenceOptions(task=f"sr-x{scale}", **CPU))
    up = bicubic_upsample(x, scale)
    with torch.no_grad():
        expected = model(up).clamp(0, 1)
    assert out.shape == (1, 1, 13 * scale, 17 * scale)
    assert torch.equal(out, expected)
    assert (out - up.clamp(0, 1)).abs().max() > 0.05  # the network did something


@pytest.mark.parametrize("task", ["denoise", "jpeg", None])
def test_jpeg_and_denoising_run_on_the_image_as_is(task: str | None) -> None:
    model = _small_dncnn3()
    x = torch.rand(2, 1, 11, 9, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x).clamp(0, 1)
    assert torch.equal(restore_tensor(model, x, InferenceOptions(task=task, **CPU)), expected)


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_sr_matches_whole_image(scale: int) -> None:
    # The receptive field counts the bicubic kernel's 2 input pixels: tiles then blend seam-free.
    model = _small_dncnn3()
    assert receptive_radius(model, task=f"sr-x{scale}") == -(-5 // scale) + 2
    x = torch.rand(1, 1, 40, 44, generator=torch.Generator().manual_seed(2))
    options = InferenceOptions(task=f"sr-x{scale}", clamp=False, **CPU)
    whole = restore_tensor(model, x, options)
    tiled = restore_tensor(model, x, replace(options, tile=32))
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)


def test_task_errors_name_the_valid_ones() -> None:
    model = _small_dncnn3()
    with pytest.raises(RestoreKitError, match=r"unknown task 'sr-x5' for model dncnn3-folded; "
                                              r"valid: denoise, sr-x2, sr-x3, sr-x4, jpeg"):
        restore_tensor(model, torch.rand(1, 1, 8, 8), InferenceOptions(task="sr-x5", **CPU))
    single = rk.create_model("dncnn-s-folded")
    with pytest.raises(RestoreKitError, match="single-task"):
        check_options(InferenceOptions(task="sr-x2", **CPU), model=single)
    model.info = replace(model.info, task_inputs={**model.info.task_inputs, "sr-x2": "lanczos-2"})
    with pytest.raises(RestoreKitError, match=r"unknown input transform 'lanczos-2' for task 'sr-x2'"):
        check_options(InferenceOptions(task="sr-x2", **CPU), model=model)
    check_options(InferenceOptions(task="sr-x3", **CPU), model=model)  # the other tasks still fine


def test_colour_sr_restores_y_and_upscales_the_chroma() -> None:
    # Y mode on a colour LR image: the output's chroma is the input's, bicubic-upscaled (DnCNN-3's demo).
    from restorekit.inference.restore import rgb_to_ycbcr

    model = _small_dncnn3()
    with torch.no_grad():
        model.body[-1].weight.mul_(0.02)  # a gentle network: nothing clips, so chroma is exactly kept
        model.body[-1].bias.zero_()
    gen = np.random.default_rng(3)
    lr = (0.35 + 0.3 * gen.random((10, 12, 3))).astype(np.float32)
    out = rk.restore(lr, model, task="sr-x2", device="cpu")
    assert out.shape == (20, 24, 3)
    ycc_in, ycc_out = rgb_to_ycbcr(image_to_tensor(lr)), rgb_to_ycbcr(image_to_tensor(out))
    torch.testing.assert_close(ycc_out[:, 1:], bicubic_upsample(ycc_in[:, 1:], 2), atol=1e-5, rtol=0)
    with torch.no_grad():
        y = model(bicubic_upsample(ycc_in[:, :1], 2))
    torch.testing.assert_close(ycc_out[:, :1], y, atol=1e-5, rtol=0)


# --- the released DnCNN3.mat -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dncnn3():
    from restorekit.pretrained import resolve_model

    return resolve_model(None, shared_path("weights", "dncnn-matconvnet", "DnCNN3.mat"), channels=1)


def test_released_x2_beats_bicubic(dncnn3) -> None:
    hr = image_to_tensor(read_image(shared_path("data", "denoise", "CSet5", "butterfly.png"), channels=1).pixels)
    hr = hr[..., 64:160, 64:160]
    lr = bicubic_downsample(hr, 2)
    sr = restore_tensor(dncnn3, lr, InferenceOptions(task="sr-x2", **CPU))
    bicubic = bicubic_upsample(lr, 2).clamp(0, 1)
    gain = psnr(sr, hr, crop_border=2) - psnr(bicubic, hr, crop_border=2)
    assert gain > 4.0, gain  # measured 6.9 dB on this crop


def test_released_jpeg_deblocking_beats_the_jpeg(dncnn3) -> None:
    clean = image_to_tensor(read_image(shared_path("data", "jpeg", "classic5", "lena.bmp"), channels=1).pixels)
    clean = clean[..., 192:320, 192:320]
    coded = jpeg_compress(clean, 10)
    out = restore_tensor(dncnn3, coded, InferenceOptions(task="jpeg", **CPU))
    assert psnr(out, clean) - psnr(coded, clean) > 1.5  # measured 2.2 dB


def test_cli_restores_x2_with_the_released_mat(tmp_path, capsys) -> None:
    weights = shared_path("weights", "dncnn-matconvnet", "DnCNN3.mat")
    write_image(tmp_path / "lr.png", np.random.default_rng(0).random((20, 18, 3)).astype(np.float32))
    code = main(["restore", str(tmp_path / "lr.png"), "-o", str(tmp_path / "sr.png"), "--weights", str(weights),
                 "--task", "sr-x2", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    out = read_image(tmp_path / "sr.png")
    assert out.pixels.shape == (40, 36, 3)
