"""A small residual U-Net for blind denoising: DRUNet's layout (Zhang, Li, Zuo, Zhang, Van Gool, Timofte,
"Plug-and-Play Image Restoration with Deep Denoiser Prior", TPAMI 2021) scaled to a CPU budget.

As in DRUNet: bias-free 3×3 convolutions, no normalisation, residual blocks at every scale, 2×2 strided
convolutions down, 2×2 transposed convolutions up, skips added. Unlike it: the image is first 2×2
pixel-unshuffled (FFDNet's trick: the top level runs on a quarter of the positions), three levels
(64 / 128 / 256) of two blocks instead of four levels of four, no noise-level map (blind, as DnCNN-B)
and a global residual, so a clean image passes through an untrained tail unchanged (the tail starts at
zero). Each 3×3 convolution costs the same per input pixel at every level, so the network costs about
half the multiply-adds of a 12 × 96 unshuffled DnCNN while seeing ~16× farther.

``resunet-color-opp`` makes a colour denoiser of the gray one, as CBM3D does (Dabov, Foi, Katkovnik,
Egiazarian, ICIP 2007): the RGB image is rotated into an orthonormal luminance–opponent basis, where
i.i.d. Gaussian noise stays i.i.d. with the same σ but the signal concentrates in luminance, and one
shared gray network denoises each of the three planes, seeing the other two as guides (weights that
start at zero, so that the gray network's own weights start it as an exact plane-by-plane denoiser).
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
                 factor: int = 2, guides: int = 0) -> None:
        super().__init__()
        self.channels, self.factor = channels, factor
        cin = channels * factor * factor
        self.head = _conv(cin, widths[0])
        # The guides' own conv (a head over the concatenation, split in two): zero at the start, so a
        # guided network begins as the unguided one, and trainable apart from it (model.train_only).
        self.guide = _conv(guides * factor * factor, widths[0]) if guides else None
        if self.guide is not None:
            nn.init.zeros_(self.guide.weight)
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

    def forward(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        h = self.head(F.pixel_unshuffle(x, self.factor))
        if guide is not None:
            if self.guide is None:
                raise ValueError("this ResUNet was built without guides (guides=0)")
            h = h + self.guide(F.pixel_unshuffle(guide, self.factor))
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        h = self.body(h)
        for up, skip in zip(reversed(self.up), reversed(skips[1:])):
            h = up(h + skip)
        return x + F.pixel_shuffle(self.tail(h + skips[0]), self.factor)


class OpponentColor(nn.Module):
    """A colour denoiser of one shared gray ``ResUNet`` run on each plane of the image in the
    orthonormal opponent basis (luminance scaled into [0, 1], chroma centred on 0.5), each plane
    guided by the other two; height and width as the gray network's."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256), blocks: int = 2, factor: int = 2) -> None:
        super().__init__()
        self.channels = 3
        self.net = ResUNet(1, widths, blocks, factor, guides=2)
        r3, r2, r6 = 3 ** -0.5, 2 ** -0.5, 6 ** -0.5
        basis = torch.tensor([[r3, r3, r3], [r2, 0.0, -r2], [r6, -2 * r6, r6]])
        # Luminance of white is sqrt(3): scaled by 1/sqrt(3) it spans [0, 1] as a gray image, its noise
        # sigma/sqrt(3); the chroma planes keep their sigma. Buffers, not weights: fixed, and not in a checkpoint.
        scale = torch.tensor([r3, 1.0, 1.0]).view(3, 1)
        self.register_buffer("forward_basis", basis * scale, persistent=False)
        self.register_buffer("inverse_basis", torch.linalg.inv(basis * scale), persistent=False)
        self.register_buffer("offset", torch.tensor([0.0, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_gray(cls, gray: ResUNet) -> "OpponentColor":
        """The colour model that runs ``gray`` (a one-channel ResUNet) on each opponent plane: its
        weights copied, the guides' weights zero."""
        widths = (gray.head.out_channels, *(down[-1].out_channels for down in gray.down))
        model = cls(widths, len(gray.body), gray.factor)
        state = {**gray.state_dict(), "guide.weight": torch.zeros_like(model.net.guide.weight)}
        model.net.load_state_dict(state)
        return model

    @property
    def output_layer(self) -> str:
        return "net.tail"

    def _rotate(self, basis: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # float32 whatever the autocast: the rotations are cheap, and a clean image must come back as it went in
        with torch.autocast(x.device.type, enabled=False):
            return torch.einsum("ij,bjhw->bihw", basis, x.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        planes = (self._rotate(self.forward_basis, x) + self.offset).to(x.dtype)
        others = planes[:, [1, 2, 0, 2, 0, 1]].reshape(b * 3, 2, h, w)
        out = self.net(planes.reshape(b * 3, 1, h, w), others).reshape(b, 3, h, w)
        return self._rotate(self.inverse_basis, out - self.offset.to(out.dtype)).to(x.dtype)


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


@register_model("resunet-color-opp", family="resunet", task="denoise", channels=3, params=4_170_752, size_multiple=8,
                protocol="dncnn", paper=_PAPER + "; in CBM3D's opponent colour space (Dabov et al., ICIP 2007)",
                description="blind colour denoiser: resunet-gray's U-Net on each opponent-colour plane, guided by the other two")
def resunet_color_opp() -> OpponentColor:
    return OpponentColor()
