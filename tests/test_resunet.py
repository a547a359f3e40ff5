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


def test_odd_sizes_restore_through_the_inference_path() -> None:
    torch.manual_seed(0)
    model = rk.create_model("resunet-gray").eval()
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    image = np.random.default_rng(0).random((61, 77, 1)).astype(np.float32)
    out = rk.restore(image, model)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.abs(out - image).mean() > 1e-3
