"""A gray model on a colour image: its luminance (Y of JPEG's YCbCr, chroma kept) or each channel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import restorekit as rk
from restorekit.checkpoints import save_checkpoint
from restorekit.cli import main
from restorekit.errors import RestoreKitError
from restorekit.inference import InferenceOptions, restore_channels
from restorekit.inference.restore import rgb_to_ycbcr, ycbcr_to_rgb
from restorekit.io import image_to_tensor, read_image, write_image
from restorekit.models import zero_output_layer
from restorekit.models.dncnn import DnCNN

CPU = {"device": "cpu"}


def _gray_dncnn(seed: int = 0, *, identity: bool = False, offset: float | None = None) -> DnCNN:
    torch.manual_seed(seed)
    model = rk.create_model("dncnn", depth=5, features=16, batch_norm=False, bias=True)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    if identity or offset is not None:
        zero_output_layer(model)
    if offset is not None:
        with torch.no_grad():
            model.get_submodule(model.output_layer).bias.fill_(-offset)  # x − (−offset)
    return model.eval()


def _colour(h: int = 14, w: int = 19, seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    return (lo + (hi - lo) * np.random.default_rng(seed).random((h, w, 3))).astype(np.float32)


def test_ycbcr_is_jpegs_and_inverts() -> None:
    from PIL import Image

    rgb = (np.random.default_rng(1).random((9, 7, 3)) * 255).round().astype(np.uint8)
    ours = rgb_to_ycbcr(image_to_tensor(rgb.astype(np.float32) / 255))[0].permute(1, 2, 0).numpy() * 255
    pil = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.float64)  # PIL rounds to integers
    assert np.abs(ours - pil).max() <= 1.0
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-12, rtol=0)
    white = rgb_to_ycbcr(torch.ones(1, 3, 1, 1, dtype=torch.float64)).flatten()
    torch.testing.assert_close(white, torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("color", ["y", "per-channel"])
def test_identity_gray_model_returns_the_colour_image(color: str) -> None:
    img = _colour()
    out = rk.restore(img, _gray_dncnn(identity=True), color=color, device="cpu")
    assert out.shape == img.shape and out.dtype == img.dtype
    np.testing.assert_allclose(out, img, atol=1e-6, rtol=0)
    as_uint8 = (img * 255).round().astype(np.uint8)
    assert np.array_equal(rk.restore(as_uint8, _gray_dncnn(identity=True), color=color, device="cpu"), as_uint8)


def test_y_mode_changes_only_the_luminance() -> None:
    img = _colour(lo=0.3, hi=0.7)  # no clipping: the YCbCr round trip is exact
    out = rk.restore(img, _gray_dncnn(offset=0.05), device="cpu")  # color="y" is the default
    ycc_in, ycc_out = rgb_to_ycbcr(image_to_tensor(img)), rgb_to_ycbcr(image_to_tensor(out))
    torch.testing.assert_close(ycc_out[:, 1:], ycc_in[:, 1:], atol=1e-6, rtol=0)
    torch.testing.assert_close(ycc_out[:, :1], ycc_in[:, :1] + 0.05, atol=1e-6, rtol=0)
    model = _gray_dncnn(3)  # a real (random) network: Y restored, chroma still the input's
    with torch.no_grad():
        model.body[-1].weight.mul_(0.1)
    out = rk.restore(img, model, device="cpu")
    ycc_out = rgb_to_ycbcr(image_to_tensor(out))
    torch.testing.assert_close(ycc_out[:, 1:], ycc_in[:, 1:], atol=1e-6, rtol=0)
    with torch.no_grad():
        y = model(ycc_in[:, :1])
    torch.testing.assert_close(ycc_out[:, :1], y, atol=1e-6, rtol=0)


def test_per_channel_is_each_channel_through_the_model() -> None:
    model = _gray_dncnn(2)
    img = _colour(seed=2)
    out = rk.restore(img, model, color="per-channel", device="cpu")
    for c in range(3):
        alone = rk.restore(img[..., c:c + 1], model, device="cpu")
        np.testing.assert_allclose(out[..., c:c + 1], alone, atol=1e-6, rtol=0)
    y_mode = rk.restore(img, model, color="y", device="cpu")
    assert np.abs(y_mode - out).max() > 0.01  # the two modes are different restorations


def test_tensor_batches_and_the_other_directions() -> None:
    model = _gray_dncnn(4)
    batch = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    for color in ("y", "per-channel"):
        out = restore_channels(model, batch, InferenceOptions(color=color, **CPU))
        assert out.shape == batch.shape
        for i in range(2):
            one = rk.restore(batch[i], model, color=color, device="cpu")  # C×H×W tensor in, tensor out
            torch.testing.assert_close(out[i], one, atol=1e-6, rtol=0)
    gray = torch.rand(1, 1, 10, 12)
    with torch.no_grad():
        expected = model(gray).clamp(0, 1)
    torch.testing.assert_close(restore_channels(model, gray, InferenceOptions(**CPU)), expected, atol=0, rtol=0)
    colour_model = rk.create_model("dncnn-s-folded", channels=3)
    assert restore_channels(colour_model, gray, InferenceOptions(**CPU)).shape == (1, 1, 10, 12)


def test_unknown_color_mode_is_a_user_error() -> None:
    with pytest.raises(RestoreKitError, match=r"unknown color mode 'lab'; valid: y, per-channel"):
        rk.restore(_colour(), _gray_dncnn(), color="lab", device="cpu")
    with pytest.raises(RestoreKitError, match="unknown color mode"):  # checked even where it would not apply
        rk.restore(_colour()[..., :1], _gray_dncnn(), color="lab", device="cpu")


def test_cli_restores_a_colour_png_with_a_gray_model(tmp_path, capsys) -> None:
    weights = save_checkpoint(tmp_path / "g.safetensors", _gray_dncnn(5))
    img = _colour(16, 20, seed=5)
    write_image(tmp_path / "rgb.png", img)
    pixels = read_image(tmp_path / "rgb.png").pixels
    for color in ("y", "per-channel"):
        out = tmp_path / f"{color}.png"
        code = main(["restore", str(tmp_path / "rgb.png"), "-o", str(out), "--weights", str(weights),
                     "--color", color, "--device", "cpu", "--precision", "fp32"])
        assert code == 0, capsys.readouterr()
        got = read_image(out)
        assert got.channels == 3
        expected = rk.restore(pixels, rk.load(weights), color=color, device="cpu")
        np.testing.assert_allclose(got.pixels, expected, atol=0.5 / 255 + 1e-6, rtol=0)  # 8-bit file
    code = main(["restore", str(tmp_path / "rgb.png"), "-o", str(tmp_path / "x.png"), "--weights", str(weights),
                 "--color", "lab"])
    assert code != 0 and "argument --color: invalid choice: 'lab'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
