"""DnCNN on a 2×2 pixel-unshuffled image: FFDNet's layout (Zhang, Zuo, Zhang, "FFDNet: Toward a Fast
and Flexible Solution for CNN-Based Image Denoising", TIP 2018) without its noise-level map.

Every 2×2 block of pixels becomes 4 channels, a DnCNN body runs on the quarter-size image and the
residual is shuffled back. Each layer sees a quarter of the positions, so training and inference
cost about a quarter of a full-resolution DnCNN of the same width, and the receptive field doubles.
The widths and depths are FFDNet's (gray: 15 layers of 64, colour: 12 of 96); ``-gray-wide`` is the
colour layout on one channel, which learns more per step than 15 × 64 on gray images. Blind: the network
estimates the noise level itself, as DnCNN-B does, so a user need not know σ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dncnn import DnCNN
from .registry import register_model


class UnshuffleDnCNN(nn.Module):
    """``pixel_shuffle(DnCNN(pixel_unshuffle(x)))``: the clean estimate; height and width must be even."""

    def __init__(self, channels: int = 1, depth: int = 15, features: int = 64, batch_norm: bool = True,
                 factor: int = 2) -> None:
        super().__init__()
        self.channels, self.factor = channels, factor
        self.net = DnCNN(channels * factor * factor, depth=depth, features=features, batch_norm=batch_norm,
                         bias=not batch_norm)

    @property
    def output_layer(self) -> str:
        return f"net.{self.net.output_layer}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.net(F.pixel_unshuffle(x, self.factor)), self.factor)


_PAPER = ("Zhang et al., FFDNet: Toward a Fast and Flexible Solution for CNN-Based Image Denoising, TIP 2018 "
          "(its layout, blind: no noise-level map)")


@register_model("dncnn-unshuffle-gray", family="dncnn-unshuffle", task="denoise", channels=1, params=485_504,
                size_multiple=2, protocol="dncnn", paper=_PAPER,
                description="blind gray denoiser: DnCNN of 15 layers x 64 on the 2x2-unshuffled image (FFDNet's gray layout)")
def dncnn_unshuffle_gray(channels: int = 1) -> UnshuffleDnCNN:
    return UnshuffleDnCNN(channels, depth=15, features=64)


@register_model("dncnn-unshuffle-gray-wide", family="dncnn-unshuffle", task="denoise", channels=1, params=838_272,
                size_multiple=2, protocol="dncnn", paper=_PAPER,
                description="blind gray denoiser: DnCNN of 12 layers x 96 on the 2x2-unshuffled image (FFDNet's colour layout on gray)")
def dncnn_unshuffle_gray_wide(channels: int = 1) -> UnshuffleDnCNN:
    return UnshuffleDnCNN(channels, depth=12, features=96)


@register_model("dncnn-unshuffle-color", family="dncnn-unshuffle", task="denoise", channels=3, params=852_096,
                size_multiple=2, protocol="dncnn", paper=_PAPER,
                description="blind colour denoiser: DnCNN of 12 layers x 96 on the 2x2-unshuffled image (FFDNet's colour layout)")
def dncnn_unshuffle_color(channels: int = 3) -> UnshuffleDnCNN:
    return UnshuffleDnCNN(channels, depth=12, features=96)
