"""The unshuffled DnCNN (FFDNet's layout, blind): its I/O contract against a reshape written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import restorekit as rk
from restorekit.models import count_parameters, zero_output_layer
from restorekit.models.fold import fold_batchnorm

from conftest import randomise_batchnorm


def _space_to_depth(x: torch.Tensor) -> torch.Tensor:
    # FFDNet's downsampling: channel c*4 + 2*i + j holds pixel (2y+i, 2x+j) of channel c
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)


def _depth_to_space(y: torch.Tensor) -> torch.Tensor:
    n, c4, h, w = y.shape
    c = c4 // 4
    return y.reshape(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, h * 2, w * 2)


@pytest.mark.parametrize("name, channels, depth, features, params",
                         [("dncnn-unshuffle-gray", 1, 15, 64, 485_504), ("dncnn-unshuffle-gray-wide", 1, 12, 96, 838_272),
                          ("dncnn-unshuffle-color", 3, 12, 96, 852_096)])
def test_layout_and_counts(name: str, channels: int, depth: int, features: int, params: int) -> None:
    model = rk.create_model(name)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == depth and convs[0].in_channels == 4 * channels and convs[0].out_channels == features
    assert convs[-1].out_channels == 4 * channels
    assert count_parameters(model) == params
    info = rk.models.model_info(name)
    assert info.size_multiple == 2 and info.channels == channels and info.task == "denoise"


def test_forward_is_the_residual_of_a_dncnn_on_the_unshuffled_image() -> None:
    torch.manual_seed(0)
    model = rk.create_model("dncnn-unshuffle-color")
    randomise_batchnorm(model)
    model.eval()
    x = torch.rand(2, 3, 24, 18)
    with torch.no_grad():
        expected = x - _depth_to_space(model.net.body(_space_to_depth(x)))
        assert (model(x) - expected).abs().max() < 1e-5
        folded = fold_batchnorm(model)
        assert (folded(x) - expected).abs().max() < 1e-5


def test_zeroed_output_layer_is_the_identity() -> None:
    model = rk.create_model("dncnn-unshuffle-gray").eval()
    zero_output_layer(model)
    x = torch.rand(1, 1, 16, 20)
    with torch.no_grad():
        assert torch.equal(model(x), x)


def test_odd_sizes_restore_through_the_inference_path() -> None:
    torch.manual_seed(0)
    model = rk.create_model("dncnn-unshuffle-gray").eval()
    image = np.random.default_rng(0).random((61, 77, 1)).astype(np.float32)
    out = rk.restore(image, model)
    assert out.shape == image.shape and out.dtype == image.dtype
    with pytest.warns(UserWarning, match="small"):
        tiled = rk.restore(image, model, tile=32)
    assert np.abs(tiled - out).max() < 1e-4
