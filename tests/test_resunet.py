"""The residual U-Net (DRUNet's layout, scaled down, blind): counts, forward against a functional
re-implementation written here, bias-free scaling and the inference path's padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import restorekit as rk
from restorekit.models import count_parameters


def _expected_params(channels: int, widths=(64, 128, 256), blocks: int = 2) -> int:
    cin = 4 * channels
    convs = sum(2 * blocks * w * w * 9 for w in widths[:-1]) * 2 + 2 * blocks * widths[-1] ** 2 * 9
    resample = sum(2 * w * w_next * 4 for w, w_next in zip(widths, widths[1:]))
    return convs + resample + 2 * cin * widths[0] * 9


@pytest.mark.parametrize("name, channels", [("resunet-gray", 1), ("resunet-color", 3)])
def test_counts_and_metadata(name: str, channels: int) -> None:
    model = rk.create_model(name)
    assert count_parameters(model) == _expected_params(channels) == rk.models.model_info(name).params
    assert all(m.bias is None for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
    info = rk.models.model_info(name)
    assert info.size_multiple == 8 and info.channels == channels and info.task == "denoise"


def _functional(model, x: torch.Tensor) -> torch.Tensor:
    def conv(t, w):
        return F.conv2d(t, w, padding=1)

    def blocks(t, seq):
        for block in seq:
            a, b = block.body[0].weight, block.body[2].weight
            t = t + conv(F.relu(conv(t, a)), b)
        return t

    h = conv(F.pixel_unshuffle(x, 2), model.head.weight)
    skips = [h]
    for down in model.down:
        h = F.conv2d(blocks(h, list(down)[:-1]), down[-1].weight, stride=2)
        skips.append(h)
    h = blocks(h, model.body)
    for up, skip in zip(reversed(model.up), reversed(skips[1:])):
        h = blocks(F.conv_transpose2d(h + skip, up[0].weight, stride=2), list(up)[1:])
    return x + F.pixel_shuffle(conv(h + skips[0], model.tail.weight), 2)


def test_forward_matches_a_functional_unet() -> None:
    torch.manual_seed(0)
    model = rk.create_model("resunet-color").eval()
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    x = torch.rand(2, 3, 32, 24)
    with torch.no_grad():
        out = model(x)
        assert (out - _functional(model, x)).abs().max() < 1e-5
        assert (out - x).abs().mean() > 1e-3


def test_untrained_tail_passes_the_image_through_and_output_scales_with_input() -> None:
    torch.manual_seed(0)
    model = rk.create_model("resunet-gray").eval()
    x = torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        assert torch.equal(model(x), x)
        torch.nn.init.normal_(model.tail.weight, std=0.05)
        # bias-free and unnormalised: f(a x) = a f(x), the property that lets one network serve every noise level
        assert (model(3 * x) - 3 * model(x)).abs().max() < 1e-4


@pytest.mark.parametrize("name, channels", [("resunet-gray", 1), ("resunet-color-opp", 3)])
def test_odd_sizes_restore_through_the_inference_path(name: str, channels: int) -> None:
    torch.manual_seed(0)
    model = rk.create_model(name).eval()
    torch.nn.init.normal_(model.get_submodule(model.output_layer).weight, std=0.05)
    image = np.random.default_rng(0).random((61, 77, channels)).astype(np.float32)
    out = rk.restore(image, model)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.abs(out - image).mean() > 1e-3


def _opponent_reference(gray, x: np.ndarray) -> np.ndarray:
    """CBM3D's opponent planes written out by hand (luminance in [0, 1], chroma around 0.5), the gray
    network run on each alone, and the planes solved back to RGB."""
    r, g, b = x
    planes = np.stack([(r + g + b) / 3, (r - b) / np.sqrt(2) + 0.5, (r - 2 * g + b) / np.sqrt(6) + 0.5])
    with torch.no_grad():
        out = gray(torch.from_numpy(planes[:, None].astype(np.float32)))[:, 0].double().numpy()
    y, u, v = out[0] * 3, (out[1] - 0.5) * np.sqrt(2), (out[2] - 0.5) * np.sqrt(6)
    # r + g + b = y, r - b = u, r - 2g + b = v
    g_ = (y - v) / 3
    r_ = (y - g_ + u) / 2
    return np.stack([r_, g_, y - g_ - r_])


def test_opponent_model_counts_and_starts_as_the_gray_network_on_each_opponent_plane() -> None:
    from restorekit.models.resunet import OpponentColor

    model = rk.create_model("resunet-color-opp")
    assert count_parameters(model) == _expected_params(1) + 2 * 4 * 64 * 9 == rk.models.model_info("resunet-color-opp").params
    # the basis keeps i.i.d. noise i.i.d.: luminance's variance scaled by 1/3 with its range, the chroma's kept
    basis = model.forward_basis.double()
    assert torch.allclose(basis @ basis.T, torch.diag(torch.tensor([1 / 3, 1.0, 1.0], dtype=torch.float64)), atol=1e-6)

    torch.manual_seed(0)
    gray = rk.create_model("resunet-gray").eval()
    torch.nn.init.normal_(gray.tail.weight, std=0.05)
    color = OpponentColor.from_gray(gray).eval()
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        out = color(x)[0].double().numpy()
    assert np.abs(out - _opponent_reference(gray, x[0].double().numpy())).max() < 1e-5
    assert np.abs(out - x[0].numpy()).mean() > 1e-3
    # once the guide weights learn, each plane's result depends on the others
    with torch.no_grad():
        torch.nn.init.normal_(color.net.guide.weight, std=0.05)
        changed = color(x)[0].double().numpy()
    assert np.abs(changed - out).mean() > 1e-4
