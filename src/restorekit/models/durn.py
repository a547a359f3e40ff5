"""Dual Residual Networks (Liu, Suganuma, Sun, Okatani, "Dual Residual Networks Leveraging the
Potential of Paired Operations for Image Restoration", CVPR 2019), as liu-vis/DualResidualNetworks.

A dual residual block (DuRB) carries two streams, ``x`` and ``res``: a plain residual unit
(conv-conv + skip), then a "paired operation" T1 → T2 in which T1's output is added to ``res`` (and
becomes the next block's ``res``) and T2's output is added to the block input. The five families:

* DuRB-P / DuRN-P: T1, T2 are convolutions with large kernels (Gaussian and real noise).
* DuRB-U / DuRN-U: T1 up-samples (PixelShuffle) then convolves, T2 is a stride-2 conv (motion blur).
* DuRB-US / DuRN-US: as U, with an SE-ResNet block before T2 (haze).
* DuRB-S / DuRN-S: as P, with an SE-ResNet block before T2 (rain streaks).
* DuRN-S-P: three DuRB-S then six DuRB-P at 1/4 resolution (raindrops).

The port keeps the reference's arithmetic and attribute names, so an official ``cleaner.state_dict()``
maps onto these modules key for key (only the ``num_batches_tracked`` buffers that PyTorch 0.3 did not
save must be added; :mod:`restorekit.convert.durn` does that). Facts kept from the reference:

* Two padding conventions. In DuRN-P and DuRN-S every ``ConvLayer`` reflection-pads by
  ``dilation·(k−1)/2``. In DuRN-U, DuRN-US and DuRN-S-P a ``ConvLayer`` with dilation 1 reflection-pads
  by ``k//2`` but a dilated one zero-pads by ``dilation`` (all of those are 3×3, so the size is kept).
  The stems of DuRN-U, DuRN-US and DuRN-S-P and the ``end_conv`` of DuRN-U and DuRN-US are plain
  zero-padded convolutions.
* The SE block's ``reduction`` is the width of its hidden layer, not a ratio.
* DuRN-U's instance norm computes ``x̂·scale + scale``: its ``shift`` parameter is never used but is a
  parameter (counted, and present in the checkpoints), kept for weight compatibility.
* Inputs are in [0, 1] (``ToTensor``), no mean/std normalisation. The output is ``x + tanh(·)``, except
  DuRN-S-P's ``x − tanh(·)``; the reference test scripts clip it to [0, 1] afterwards.
* DuRN-S-P works in BGR (the RainDrop loader reads with OpenCV) and defines an unused PReLU.
* DuRN-U, DuRN-US and DuRN-S-P need height and width divisible by 4 (two stride-2 stages and two ×2
  up-samplings); the models do not pad, the inference path does (``size_multiple=4``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import register_model

_PAPER = (
    "Liu, Suganuma, Sun, Okatani, Dual Residual Networks Leveraging the Potential of Paired Operations "
    "for Image Restoration, CVPR 2019"
)

# (k1, k2, dilation) of the six DuRB-P / DuRB-S of DuRN-P and DuRN-S.
P_BLOCKS: tuple[tuple[int, int, int], ...] = ((5, 3, 1), (7, 5, 1), (7, 5, 2), (11, 7, 2), (11, 5, 1), (11, 7, 3))
# (f_size, dilation) of DuRN-U's six DuRB-U.
U_BLOCKS: tuple[tuple[int, int], ...] = ((3, 3), (7, 1), (3, 3), (7, 1), (3, 2), (5, 1))
# f_size of DuRN-US's twelve DuRB-US (all dilation 1).
US_BLOCKS: tuple[int, ...] = (5, 5, 7, 7, 11, 11, 11, 11, 11, 11, 11, 11)
# Dilations of DuRN-S-P's three DuRB-S (3×3 up-conv), then (f_size, dilation) of its six DuRB-P.
SP_SE_DILATIONS: tuple[int, ...] = (12, 8, 6)
SP_P_BLOCKS: tuple[tuple[int, int], ...] = ((3, 2), (5, 1), (3, 3), (7, 1), (3, 4), (7, 1))


class ConvLayer(nn.Module):
    """Convolution with the reference's padding: reflection by ``dilation·(k−1)/2``, or, when
    ``zero_pad_dilated`` and dilated, zero padding of ``dilation`` (the U/US/S-P convention)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        zero_pad_dilated: bool = False,
    ) -> None:
        super().__init__()
        if zero_pad_dilated and dilation != 1:
            self.reflection_pad: nn.Module = nn.Identity()
            self.conv2d = nn.Conv2d(in_dim, out_dim, kernel_size, stride, padding=dilation, dilation=dilation)
        else:
            self.reflection_pad = nn.ReflectionPad2d(dilation * (kernel_size - 1) // 2)
            self.conv2d = nn.Conv2d(in_dim, out_dim, kernel_size, stride, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class InsNorm(nn.Module):
    """The reference's instance norm (eps 1e-9, biased variance) including its bug: the affine step adds
    ``scale`` where ``shift`` was meant. ``shift`` stays a parameter so that checkpoints load."""

    def __init__(self, dim: int, eps: float = 1e-9) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.empty(dim).uniform_())
        self.shift = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        scale = self.scale.view(1, -1, 1, 1)
        return (x - mean) / torch.sqrt(var + self.eps) * scale + scale


class FeatNorm(nn.Module):
    """Wrapper that gives the norm layers the reference's ``<name>.norm.`` keys."""

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        if kind == "batch":
            self.norm: nn.Module = nn.BatchNorm2d(dim)
        elif kind == "instance":
            self.norm = InsNorm(dim)
        else:
            raise ValueError(f"unknown norm {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def _norm(kind: str | None, dim: int) -> nn.Module:
    return nn.Identity() if kind is None else FeatNorm(kind, dim)


class SELayer(nn.Module):
    """Squeeze-and-excitation gate; ``hidden`` is the bottleneck width itself (the reference calls it
    ``reduction``)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        return x * self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)


class SEBasicBlock(nn.Module):
    """SE-ResNet basic block (two bias-free zero-padded 3×3 convs, optional BN, SE gate, skip, ReLU)."""

    def __init__(self, channels: int, hidden: int, with_norm: bool = False) -> None:
        super().__init__()
        self.with_norm = with_norm
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.se = SELayer(channels, hidden)
        self.relu = nn.ReLU()
        if with_norm:
            self.bn1 = nn.BatchNorm2d(channels)
            self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if self.with_norm:
            out = self.bn1(out)
        out = self.conv2(self.relu(out))
        if self.with_norm:
            out = self.bn2(out)
        return self.relu(self.se(out) + x)


class DuRBP(nn.Module):
    """DuRB-P: T1 = k1×k1 conv (dilated), T2 = k2×k2 conv, each followed by BN (unless ``norm`` is None)."""

    def __init__(
        self,
        dim: int,
        k1: int,
        k2: int,
        dilation: int = 1,
        norm: str | None = "batch",
        zero_pad_dilated: bool = False,
        se_hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = ConvLayer(dim, dim, 3)
        self.norm1 = _norm(norm, dim)
        self.conv2 = ConvLayer(dim, dim, 3)
        self.norm2 = _norm(norm, dim)
        self.up_conv = ConvLayer(dim, dim, k1, dilation=dilation, zero_pad_dilated=zero_pad_dilated)
        self.up_norm = _norm(norm, dim)
        self.se = SEBasicBlock(dim, se_hidden, with_norm=True) if se_hidden is not None else nn.Identity()
        self.down_conv = ConvLayer(dim, dim, k2)
        self.down_norm = _norm(norm, dim)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, res: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_r = x
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.relu(self.norm2(self.conv2(x) + x_r))
        x = self.relu(self.up_norm(self.up_conv(x)) + res)
        res = x
        x = self.relu(self.down_norm(self.down_conv(self.se(x))) + x_r)
        return x, res


class DuRBS(DuRBP):
    """DuRB-S: DuRB-P with BN and an SE-ResNet block (with BN) in front of T2."""

    def __init__(
        self, dim: int, k1: int, k2: int, dilation: int = 1, se_hidden: int = 32, zero_pad_dilated: bool = False
    ) -> None:
        super().__init__(dim, k1, k2, dilation, "batch", zero_pad_dilated, se_hidden)


class DuRBU(nn.Module):
    """DuRB-U: T1 = conv + norm, PixelShuffle ×2, f×f conv (at ``res``'s resolution); T2 = stride-2 3×3
    conv. The norms after T1 and T2 come after the additions (unlike DuRB-P)."""

    def __init__(
        self,
        dim: int = 256,
        res_dim: int = 128,
        f_size: int = 3,
        dilation: int = 1,
        norm: str | None = "instance",
        pre_kernel: int = 1,
        se_hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = ConvLayer(dim, dim, 3)
        self.norm1 = _norm(norm, dim)
        self.conv2 = ConvLayer(dim, dim, 3)
        self.norm2 = _norm(norm, dim)
        self.conv_pre = ConvLayer(dim, 4 * res_dim, pre_kernel)
        self.norm_pre = _norm(norm, 4 * res_dim)
        self.upsamp = nn.PixelShuffle(2)
        self.up_conv = ConvLayer(res_dim, res_dim, f_size, dilation=dilation, zero_pad_dilated=True)
        self.up_norm = _norm(norm, res_dim)
        self.se = SEBasicBlock(res_dim, se_hidden) if se_hidden is not None else nn.Identity()
        self.down_conv = ConvLayer(res_dim, dim, 3, stride=2)
        self.down_norm = _norm(norm, dim)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, res: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_r = x
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.relu(self.norm2(self.conv2(x) + x_r))
        x = self.upsamp(self.norm_pre(self.conv_pre(x)))
        x = self.relu(self.up_norm(self.up_conv(x) + res))
        res = x
        x = self.relu(self.down_norm(self.down_conv(self.se(x)) + x_r))
        return x, res


class DuRBUS(DuRBU):
    """DuRB-US: DuRB-U without norms, a 3×3 conv before the PixelShuffle and an SE-ResNet block (no BN)
    in front of T2."""

    def __init__(self, dim: int = 64, res_dim: int = 64, f_size: int = 3, dilation: int = 1, se_hidden: int = 32) -> None:
        super().__init__(dim, res_dim, f_size, dilation, norm=None, pre_kernel=3, se_hidden=se_hidden)


def _check_multiple_of_4(x: torch.Tensor, name: str) -> None:
    if x.shape[-2] % 4 or x.shape[-1] % 4:
        raise ValueError(f"{name} needs height and width divisible by 4, got {tuple(x.shape[-2:])}; pad the input")


class DuRNP(nn.Module):
    """DuRN-P: conv stem, six DuRB-P of width ``features``, two convs, output ``x + tanh(·)``.

    ``norm="batch"`` is the Gaussian-noise model (gray), ``norm=None`` the real-noise one (RGB).
    """

    output_layer = "conv4"  # makes the residual: zeroed, the network is the identity (train's identity_init)

    def __init__(
        self,
        channels: int = 1,
        features: int = 32,
        norm: str | None = "batch",
        blocks: tuple[tuple[int, int, int], ...] = P_BLOCKS,
        se_hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = ConvLayer(channels, features, 3)
        self.norm1 = _norm(norm, features)
        self.conv2 = ConvLayer(features, features, 3)
        self.norm2 = _norm(norm, features)
        self.block_names = tuple(f"block{i + 1}" for i in range(len(blocks)))
        for name, (k1, k2, d) in zip(self.block_names, blocks):
            self.add_module(name, DuRBP(features, k1, k2, d, norm=norm, se_hidden=se_hidden))
        self.conv3 = ConvLayer(features, features, 3)
        self.norm3 = _norm(norm, features)
        self.conv4 = ConvLayer(features, channels, 3)
        self.relu = nn.ReLU()
        self.tanh = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        res = out
        for name in self.block_names:
            out, res = getattr(self, name)(out, res)
        out = self.relu(self.norm3(self.conv3(out)))
        return x + self.tanh(self.conv4(out))


class DuRNS(DuRNP):
    """DuRN-S: DuRN-P with BN, 64 features and DuRB-S blocks (SE hidden width 32 = features/2)."""

    def __init__(self, channels: int = 3, features: int = 64, se_hidden: int = 32) -> None:
        super().__init__(channels, features, "batch", P_BLOCKS, se_hidden=se_hidden)


class DuRNU(nn.Module):
    """DuRN-U: stride-2 encoder to 1/4 resolution, six DuRB-U (``res`` at 1/2), PixelShuffle decoder, all
    with the reference's instance norm; output ``x + tanh(·)``."""

    output_layer = "end_conv"

    def __init__(self, channels: int = 3, blocks: tuple[tuple[int, int], ...] = U_BLOCKS) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Conv2d(channels, 64, 7, padding=3)
        self.norm1 = FeatNorm("instance", 64)
        self.conv2 = nn.Conv2d(64, 128, 3, stride=2, padding=1)
        self.norm2 = FeatNorm("instance", 128)
        self.conv3 = nn.Conv2d(128, 256, 3, stride=2, padding=1)
        self.norm3 = FeatNorm("instance", 256)
        self.block_names = tuple(f"rud{i + 1}" for i in range(len(blocks)))
        for name, (f, d) in zip(self.block_names, blocks):
            self.add_module(name, DuRBU(256, 128, f, d))
        self.upconv1 = ConvLayer(256, 512, 1)
        self.upnorm1 = FeatNorm("instance", 512)
        self.upsamp1 = nn.PixelShuffle(2)
        self.conv4 = ConvLayer(128, 128, 3)
        self.norm4 = FeatNorm("instance", 128)
        self.upconv2 = ConvLayer(128, 256, 1)
        self.upnorm2 = FeatNorm("instance", 256)
        self.upsamp2 = nn.PixelShuffle(2)
        self.conv5 = ConvLayer(64, 64, 3)
        self.norm5 = FeatNorm("instance", 64)
        self.end_conv = nn.Conv2d(64, channels, 7, padding=3)
        self.relu = nn.ReLU()
        self.tanh = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_multiple_of_4(x, "DuRN-U")
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        res = out
        out = self.relu(self.norm3(self.conv3(out)))
        for name in self.block_names:
            out, res = getattr(self, name)(out, res)
        out = self.upsamp1(self.upnorm1(self.upconv1(out)))
        out = self.relu(self.norm4(self.conv4(out)))
        out = self.upsamp2(self.upnorm2(self.upconv2(out)))
        out = self.relu(self.norm5(self.conv5(out)))
        return x + self.tanh(self.end_conv(out))


class DuRNUS(nn.Module):
    """DuRN-US: as DuRN-U with 64 features throughout, no normalisation, twelve DuRB-US."""

    output_layer = "end_conv"

    def __init__(self, channels: int = 3, blocks: tuple[int, ...] = US_BLOCKS) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Conv2d(channels, 64, 7, padding=3)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, stride=2, padding=1)
        self.block_names = tuple(f"rud{i + 1}" for i in range(len(blocks)))
        for name, f in zip(self.block_names, blocks):
            self.add_module(name, DuRBUS(64, 64, f))
        self.upconv1 = ConvLayer(64, 256, 3)
        self.upsamp1 = nn.PixelShuffle(2)
        self.conv4 = ConvLayer(64, 64, 3)
        self.upconv2 = ConvLayer(64, 256, 3)
        self.upsamp2 = nn.PixelShuffle(2)
        self.conv5 = ConvLayer(64, 64, 3)
        self.end_conv = nn.Conv2d(64, channels, 7, padding=3)
        self.relu = nn.ReLU()
        self.tanh = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_multiple_of_4(x, "DuRN-US")
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out))
        res = out
        out = self.relu(self.conv3(out))
        for name in self.block_names:
            out, res = getattr(self, name)(out, res)
        out = self.relu(self.conv4(self.upsamp1(self.upconv1(out))))
        out = self.relu(self.conv5(self.upsamp2(self.upconv2(out))))
        return x + self.tanh(self.end_conv(out))


def _deconv(in_dim: int, out_dim: int) -> nn.Sequential:
    # ConvTranspose ×2, then a one-sided pad and 2×2 average (stride 1): keeps the doubled size.
    return nn.Sequential(
        nn.ConvTranspose2d(in_dim, out_dim, 4, 2, 1), nn.ReflectionPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1), nn.ReLU()
    )


class DuRNSP(nn.Module):
    """DuRN-S-P: BN encoder to 1/4 resolution, three DuRB-S (SE hidden 64, 3×3 T2) then six DuRB-P (5×5
    T2), the ``res`` stream reset to ``x`` between the two groups; transposed-conv decoder; output
    ``x − tanh(·)``; BGR input.

    The first conv (5×5, padding 1) trims one pixel per side; the stride-2 stages take that to
    ⌈(H−2)/4⌉ = H/4 exactly when H is a multiple of 4, and the two ×2 up-samplings restore H. The
    reference crops test images to multiples of 4 (``align_to_k``) and fails on any other size, so this
    port requires multiples of 4 and leaves padding to the inference path. ``prelu`` is defined but
    unused, as in the reference (its one parameter is in the checkpoints).
    """

    output_layer = "end_conv"

    def __init__(
        self,
        channels: int = 3,
        se_dilations: tuple[int, ...] = SP_SE_DILATIONS,
        p_blocks: tuple[tuple[int, int], ...] = SP_P_BLOCKS,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Conv2d(channels, 64, 5, padding=1)
        self.norm1 = FeatNorm("batch", 64)
        self.conv2 = nn.Conv2d(64, 128, 3, stride=2, padding=1)
        self.norm2 = FeatNorm("batch", 128)
        self.conv3 = nn.Conv2d(128, 128, 3, stride=2, padding=1)
        self.norm3 = FeatNorm("batch", 128)
        n_se = len(se_dilations)
        self.se_names = tuple(f"rud{i + 1}" for i in range(n_se))
        self.p_names = tuple(f"rud{n_se + i + 1}" for i in range(len(p_blocks)))
        for name, d in zip(self.se_names, se_dilations):
            self.add_module(name, DuRBS(128, 3, 3, d, se_hidden=64, zero_pad_dilated=True))
        for name, (f, d) in zip(self.p_names, p_blocks):
            self.add_module(name, DuRBP(128, f, 5, d, norm="batch", zero_pad_dilated=True))
        self.deconv1 = _deconv(128, 128)
        self.conv4 = ConvLayer(128, 128, 3)
        self.norm4 = FeatNorm("batch", 128)
        self.deconv2 = _deconv(128, 64)
        self.end_conv = ConvLayer(64, channels, 5)
        self.relu = nn.ReLU()
        self.tanh = nn.Tanh()
        self.prelu = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_multiple_of_4(x, "DuRN-S-P")
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.relu(self.norm3(self.conv3(out)))
        res = out
        for name in self.se_names:
            out, res = getattr(self, name)(out, res)
        res = out
        for name in self.p_names:
            out, res = getattr(self, name)(out, res)
        out = self.relu(self.norm4(self.conv4(self.deconv1(out))))
        return x - self.tanh(self.end_conv(self.deconv2(out)))


_COMMON: dict[str, Any] = dict(family="durn", paper=_PAPER, input_range=1.0)


@register_model("durn-p", task="denoise", protocol="durn-gray", channels=1, params=816_225, size_multiple=1, color_order="rgb",
                description="DuRN-P, gray, 32 features, BN; Gaussian noise (one model for sigma 30/50/70 on BSD gray)",
                **_COMMON)
def durn_p(channels: int = 1) -> DuRNP:
    return DuRNP(channels, 32, "batch")


@register_model("durn-p-nonorm", task="denoise-real", protocol="durn-rgb", channels=3, params=815_651, size_multiple=1, color_order="rgb",
                description="DuRN-P without normalisation, RGB, 32 features; real noise (RealNoiseHKPoly)", **_COMMON)
def durn_p_nonorm(channels: int = 3) -> DuRNP:
    return DuRNP(channels, 32, None)


@register_model("durn-u", task="deblur", protocol="durn-rgb", channels=3, params=12_856_579, size_multiple=4, color_order="rgb",
                description="DuRN-U, instance norm, six DuRB-U; motion blur (GoPro)", **_COMMON)
def durn_u(channels: int = 3) -> DuRNU:
    return DuRNU(channels)


@register_model("durn-us", task="dehaze", protocol="durn-rgb", channels=3, params=9_070_915, size_multiple=4, color_order="rgb",
                description="DuRN-US, no normalisation, twelve DuRB-US with SE; haze (RESIDE, DCPDN data)", **_COMMON)
def durn_us(channels: int = 3) -> DuRNUS:
    return DuRNUS(channels)


@register_model("durn-s", task="derain", protocol="durn-y", channels=3, params=3_729_923, size_multiple=1, color_order="rgb",
                description="DuRN-S, 64 features, BN, six DuRB-S with SE; rain streaks (DDN, DID-MDN data)", **_COMMON)
def durn_s(channels: int = 3) -> DuRNS:
    return DuRNS(channels)


@register_model("durn-s-p", task="deraindrop", protocol="durn-y", channels=3, params=10_176_964, size_multiple=4, color_order="bgr",
                description="DuRN-S-P, BN, three DuRB-S then six DuRB-P, BGR input; raindrops (RainDrop)", **_COMMON)
def durn_s_p(channels: int = 3) -> DuRNSP:
    return DuRNSP(channels)
