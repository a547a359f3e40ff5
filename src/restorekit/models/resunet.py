"""A small residual U-Net for blind denoising: DRUNet's layout (Zhang, Li, Zuo, Zhang, Van Gool, Timofte,
"Plug-and-Play Image Restoration with Deep Denoiser Prior", TPAMI 2021) scaled to a CPU budget.

As in DRUNet: bias-free 3×3 convolutions, no normalisation, residual blocks at every scale, 2×2 strided
convolutions down, 2×2 transposed convolutions up, skips added. Unlike it: the image is first 2×2
pixel-unshuffled (FFDNet's trick: the top level runs on a quarter of the positions), three levels
(64 / 128 / 256) of two blocks instead of four levels of four, no noise-level map (blind, as DnCNN-B)
and a global residual, so a clean image passes through an untrained tail unchanged (the tail starts at
zero). Each 3×3 convolution costs the same per input pixel at every level, so the network costs about
half the multiply-adds of a 12 × 96 unshuffled DnCNN while seeing ~16× farther.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


class ResBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(features, features), nn.ReLU(inplace=True), _conv(features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResUNet(nn.Module):
    """``x + pixel_shuffle(unet(pixel_unshuffle(x)))``; height and width must divide by
    ``factor · 2^(len(widths) − 1)``."""

    def __init__(self, channels: int = 1, widths: tuple[int, ...] = (64, 128, 256), blocks: int = 2,
                 factor: int = 2) -> None:
        super().__init__()
        self.channels, self.factor = channels, factor
        cin = channels * factor * factor
        self.head = _conv(cin, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(*(ResBlock(w) for _ in range(blocks)), nn.Conv2d(w, w_next, 2, stride=2, bias=False))
            for w, w_next in zip(widths, widths[1:]))
        self.body = nn.Sequential(*(ResBlock(widths[-1]) for _ in range(blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(w_next, w, 2, stride=2, bias=False), *(ResBlock(w) for _ in range(blocks)))
            for w, w_next in zip(widths, widths[1:]))
        self.tail = _conv(widths[0], cin)
        nn.init.zeros_(self.tail.weight)

    @property
    def output_layer(self) -> str:
        return "tail"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(F.pixel_unshuffle(x, self.factor))
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        h = self.body(h)
        for up, skip in zip(reversed(self.up), reversed(skips[1:])):
            h = up(h + skip)
        return x + F.pixel_shuffle(self.tail(h + skips[0]), self.factor)


_PAPER = ("Zhang et al., Plug-and-Play Image Restoration with Deep Denoiser Prior (DRUNet), TPAMI 2021 "
          "(its layout scaled down, on the 2x2-unshuffled image, blind: no noise-level map)")


@register_model("resunet-gray", family="resunet", task="denoise", channels=1, params=4_166_144, size_multiple=8,
                protocol="dncnn", paper=_PAPER,
                description="blind gray denoiser: residual U-Net (64/128/256, 2 blocks a level) on the 2x2-unshuffled image")
def resunet_gray(channels: int = 1) -> ResUNet:
    return ResUNet(channels)


@register_model("resunet-color", family="resunet", task="denoise", channels=3, params=4_175_360, size_multiple=8,
                protocol="dncnn", paper=_PAPER,
                description="blind colour denoiser: residual U-Net (64/128/256, 2 blocks a level) on the 2x2-unshuffled image")
def resunet_color(channels: int = 3) -> ResUNet:
    return ResUNet(channels)
