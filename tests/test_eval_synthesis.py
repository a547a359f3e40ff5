"""`restorekit eval` degrades clean sets itself for JPEG deblocking (``--jpeg Q``) and super-resolution (the
model's SR task: MATLAB-bicubic downscaling), as Demo_test_DnCNN3.m does, and so reproduces DnCNN-3's
published Classic5 and Set5 numbers from the released DnCNN3.mat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restorekit.cli import main
from restorekit.degradations.jpeg import jpeg_compress
from restorekit.degradations.sr import bicubic_downsample
from restorekit.errors import RestoreKitError
from restorekit.eval.datasets import Sample
from restorekit.eval.evaluate import EvalSettings, evaluate, load_pair
from restorekit.io import image_to_tensor, read_image, write_image
from restorekit.metrics import luminance

from conftest import shared_path
from test_dncnn3_tasks import _small_dncnn3


def _rgb(path, h: int = 37, w: int = 42, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    write_image(path, pixels)
    return read_image(path).pixels


def test_sr_pair_is_the_modcropped_image_and_its_8bit_bicubic_downscale(tmp_path) -> None:
    pixels = _rgb(tmp_path / "a.png")
    lr, hr = load_pair(Sample("a", tmp_path / "a.png"), 3, sigma=None, scale=3)
    assert hr.shape == (1, 3, 36, 42)  # 37 → 36: a multiple of 3
    torch.testing.assert_close(hr, image_to_tensor(pixels)[..., :36, :42])
    expected = (bicubic_downsample(hr, 3).clamp(0, 1) * 255).round() / 255
    assert lr.shape == (1, 3, 12, 14)
    torch.testing.assert_close(lr, expected)


def test_a_gray_model_sees_matlab_rgb2ycbcr_luminance_for_sr_and_jpeg(tmp_path) -> None:
    pixels = _rgb(tmp_path / "a.png", 24, 30)
    lr, hr = load_pair(Sample("a", tmp_path / "a.png"), 1, sigma=None, scale=2)
    r, g, b = (torch.from_numpy(pixels[..., i].astype(np.float64)) for i in range(3))
    y = (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255  # MATLAB rgb2ycbcr on doubles
    torch.testing.assert_close(hr[0, 0].double(), y, atol=1e-6, rtol=0)
    rgb_lr = (bicubic_downsample(image_to_tensor(pixels), 2).clamp(0, 1) * 255).round() / 255
    torch.testing.assert_close(lr, luminance(rgb_lr, "y"))  # rounded as RGB, then converted

    coded, clean = load_pair(Sample("a", tmp_path / "a.png"), 1, sigma=None, jpeg=10)
    torch.testing.assert_close(clean[0, 0].double(), (y * 255).round() / 255, atol=1e-6, rtol=0)
    torch.testing.assert_close(coded, jpeg_compress(clean, 10))
    assert (coded - clean).abs().max() > 0.02  # q10 is far from lossless


def test_a_paired_sr_set_must_hold_inputs_of_the_target_size_over_the_scale(tmp_path) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    _rgb(tmp_path / "target" / "a.png", 32, 40)
    _rgb(tmp_path / "input" / "a.png", 16, 20, seed=1)
    lr, hr = load_pair(Sample("a", tmp_path / "target" / "a.png", tmp_path / "input" / "a.png"), 3,
                       sigma=None, scale=2)
    assert lr.shape[-2:] == (16, 20) and hr.shape[-2:] == (32, 40)
    with pytest.raises(RestoreKitError, match=r"/ 4 = \(8, 10\)"):
        load_pair(Sample("a", tmp_path / "target" / "a.png", tmp_path / "input" / "a.png"), 3, sigma=None, scale=4)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sigma": 25.0, "jpeg": 10}, "one degradation .* noise .* and JPEG"),
    ({"sigma": 25.0, "scale": 2}, "one degradation .* and x2 downscaling"),
    ({"sigma": None, "jpeg": 0}, "JPEG quality must be an integer in 1..100"),
    ({"sigma": None, "jpeg": 101}, "JPEG quality"),
])
def test_conflicting_or_bad_degradations_are_refused(tmp_path, kwargs, message) -> None:
    _rgb(tmp_path / "a.png")
    with pytest.raises(RestoreKitError, match=message):
        load_pair(Sample("a", tmp_path / "a.png"), 1, **kwargs)


def test_sr_evaluation_compares_with_bicubic_and_crops_the_scale(tmp_path) -> None:
    _rgb(tmp_path / "a.png", 40, 44)
    model = _small_dncnn3()
    from restorekit.inference import InferenceOptions

    result = evaluate(model, EvalSettings(data=str(tmp_path), scale=2, crop_border=2),
                      InferenceOptions(task="sr-x2", device="cpu"), progress=False)
    row = result.images[0]
    assert np.isfinite(row["psnr"]) and np.isfinite(row["input_psnr"])
    assert row["psnr"] != row["input_psnr"]  # the network changed the bicubic image


def test_cli_refuses_two_degradations_before_loading_a_model(tmp_path, capsys) -> None:
    code = main(["eval", "--weights", str(tmp_path / "missing.safetensors"), "--jpeg", "10", "--sigma", "25",
                 "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and "one degradation" in err and "Traceback" not in err


def test_cli_refuses_noise_on_an_sr_task(tmp_path, capsys) -> None:
    weights = shared_path("weights", "dncnn-matconvnet", "DnCNN3.mat")
    _rgb(tmp_path / "a.png")
    code = main(["eval", "--weights", str(weights), "--task", "sr-x3", "--sigma", "25", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and "one degradation" in err and "x3 downscaling" in err and "Traceback" not in err


def test_cli_without_a_degradation_for_a_clean_set_says_how_to_give_one(tmp_path, capsys) -> None:
    weights = shared_path("weights", "dncnn-matconvnet", "DnCNN3.mat")
    _rgb(tmp_path / "a.png")
    code = main(["eval", "--weights", str(weights), "--task", "jpeg", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and "--jpeg" in err and "--sigma" in err


# --- DnCNN-3's published numbers, from DnCNN3.mat (Zhang et al. 2017, Tables 5 and 6) --------------------

def _mean(capsys) -> tuple[float, float, float]:
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("mean"))
    return tuple(float(v) for v in line.split()[1:4])  # type: ignore[return-value]


def test_released_dncnn3_reproduces_classic5_jpeg_q10(capsys) -> None:
    weights = shared_path("weights", "dncnn-matconvnet", "DnCNN3.mat")
    shared_path("data", "jpeg", "classic5")
    code = main(["eval", "--weights", str(weights), "--task", "jpeg", "--jpeg", "10", "--data", "classic5",
                 "--protocol", "dncnn-matlab", "--device", "cpu"])
    assert code == 0
    psnr, ssim, jpeg = _mean(capsys)
    assert abs(psnr - 29.40) < 0.02 and abs(ssim - 0.8026) < 0.0005, (psnr, ssim)  # measured 29.405 / 0.8026
    assert psnr - jpeg > 1.5


def test_released_dncnn3_reproduces_set5_x3(capsys) -> None:
    weights = shared_path("weights", "dncnn-matconvnet", "DnCNN3.mat")
    shared_path("data", "denoise", "CSet5")
    code = main(["eval", "--weights", str(weights), "--task", "sr-x3", "--data", "CSet5", "--device", "cpu"])
    assert code == 0
    psnr, ssim, bicubic = _mean(capsys)
    assert abs(psnr - 33.75) < 0.02 and abs(ssim - 0.9222) < 0.0005, (psnr, ssim)  # measured 33.759 / 0.9223
    assert abs(bicubic - 30.39) < 0.05, bicubic  # the usual bicubic baseline of Set5 x3
