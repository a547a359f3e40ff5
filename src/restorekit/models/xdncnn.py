"""xDnCNN (Kligvasser, Rott Shaham, Michaeli, "xUnit: Learning a Spatial Activation Function for
Efficient Image Restoration", CVPR 2018) and the generators of its reference code.

Two families of layouts:

- ``XDnCNN``, the paper's denoiser: DnCNN with its ReLUs replaced by xUnits and cut to 9 layers,
  ``[conv + xUnit] + 7 × [conv + BN + xUnit] + conv``, 64 features, predicting the noise like DnCNN.
  The unit that gives the paper's size is the full xUnit with batch norm and a 9×9 depthwise conv
  (BN 128 + conv 64·81+64 + BN 128 = 5,504 parameters): with biased 3×3 convs the colour model has
  262,915 + 8 × 5,504 = 306,947 parameters, the gray one 304,641 (the paper states 303K). That is
  the paper's layout (``xdncnn``, ``xdncnn-gray``). The authors' released code and weights
  (kligvasser/xUnit @ e12a65b, 2018-04-03, ``denoising/models.py`` and ``denoising/checkpoints/``) put
  each block's BN before its conv instead (``norm_before_conv=True``; same count): ``xdncnn-2018``,
  which loads the released σ25/σ50 files and reproduces the paper's BSD68 numbers.
- ``XDnCNNRef`` / ``DnCNNRef``: ``g_xdncnn`` / ``g_dncnn`` of kligvasser/xUnit
  (``denoising/models/``), with the same attribute names so their state dicts load unchanged. These add
  the network's output to the input (``x + body(x)``) and work on images in [0, 1] (``ToTensor``, noise
  of σ/255 added).
"""

from __future__ import annotations

import torch
from torch import nn

from .xunit import Gate, XUnit, XUnitS, swap_activations
from .dncnn import DnCNN
from .registry import register_model


class XDnCNN(nn.Module):
    """``depth`` convs: conv + xUnit, (depth−2) × [conv + BN + xUnit], conv; returns ``x − body(x)``."""

    def __init__(
        self,
        channels: int = 1,
        depth: int = 9,
        features: int = 64,
        kernel_size: int = 9,
        gate: Gate = "gaussian",
        bias: bool = True,
        norm_before_conv: bool = False,
    ) -> None:
        super().__init__()
        if depth < 3:
            raise ValueError("xDnCNN needs depth >= 3")
        self.channels, self.depth = channels, depth

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)

        def unit() -> XUnit:
            return XUnit(features, kernel_size=kernel_size, batch_norm=True, gate=gate)

        layers: list[nn.Module] = [conv(channels, features), unit()]
        for _ in range(depth - 2):
            pair = [nn.BatchNorm2d(features), conv(features, features)]
            layers += (pair if norm_before_conv else pair[::-1]) + [unit()]
        layers.append(conv(features, channels))
        self.body = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.groups == 1:
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # Start near the identity, as DnCNN does: with plain He init the output conv predicts a residual of
        # std ~0.9 on [0, 1] images (DnCNN: ~0.02), and training first spends hundreds of steps undoing it.
        # The literature gives no init; this is the reference generator's scale (He x 0.02, _ref_init).
        layers[-1].weight.data.mul_(0.02)

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """The network's own output: the estimated noise (residual)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


def _ref_init(module: nn.Module, scale: float) -> None:
    # The reference's initialize_weights: He init scaled down (0.02), BN at identity. It is applied to the
    # block's conv and BN only; the xUnit keeps PyTorch's default init.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class XUnitGenBlock(nn.Module):
    """``g_xdncnn`` block: BN (on the input) → biased 3×3 conv → slim xUnit (k 7, BN, sigmoid)."""

    def __init__(self, in_channels: int, out_channels: int, xunit_kernel: int = 7) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)
        self.xunit = XUnitS(out_channels, kernel_size=xunit_kernel, batch_norm=True, gate="sigmoid")
        _ref_init(self.conv, 0.02)
        _ref_init(self.bn, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.xunit(self.conv(self.bn(x)))


class ReLUGenBlock(nn.Module):
    """``g_dncnn`` block: 3×3 conv → BN → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        _ref_init(self, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class _RefGenerator(nn.Module):
    """The reference Generator: block, ``blocks`` × block, 5×5 biased conv; ``x + body(x)``."""

    def __init__(self, first: nn.Module, blocks: list[nn.Module], channels: int, features: int) -> None:
        super().__init__()
        self.channels = channels
        # Registered in the reference's order, so state dicts list their keys the same way.
        self.image_to_features = first
        self.features = nn.Sequential(*blocks)
        self.features_to_image = nn.Conv2d(features, channels, 5, padding=2)
        _ref_init(self.features_to_image, 0.02)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """What the network adds to its input."""
        return self.features_to_image(self.features(self.image_to_features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class XDnCNNRef(_RefGenerator):
    """kligvasser/xUnit ``g_xdncnn`` (its defaults: 3 channels, 64 features, 8 blocks after the first)."""

    def __init__(self, channels: int = 3, blocks: int = 8, features: int = 64, xunit_kernel: int = 7) -> None:
        super().__init__(
            XUnitGenBlock(channels, features, xunit_kernel),
            [XUnitGenBlock(features, features, xunit_kernel) for _ in range(blocks)],
            channels,
            features,
        )


class DnCNNRef(_RefGenerator):
    """kligvasser/xUnit ``g_dncnn``, the ReLU baseline (only the first conv has a bias)."""

    def __init__(self, channels: int = 3, blocks: int = 8, features: int = 64) -> None:
        super().__init__(
            ReLUGenBlock(channels, features, bias=True),
            [ReLUGenBlock(features, features, bias=False) for _ in range(blocks)],
            channels,
            features,
        )


_PAPER = ("Kligvasser, Rott Shaham, Michaeli, xUnit: Learning a Spatial Activation Function for Efficient "
          "Image Restoration, CVPR 2018")
_REF = "kligvasser/xUnit (denoising/models)"


@register_model("xdncnn", family="xdncnn", task="denoise", channels=3, params=306_947, paper=_PAPER,
                description="xDnCNN: 9 biased 3×3 convs, 64 features, xUnits (BN, 9×9 depthwise, Gaussian gate); predicts the noise")
def xdncnn(channels: int = 3, gate: Gate = "gaussian") -> XDnCNN:
    return XDnCNN(channels, depth=9, gate=gate)


@register_model("xdncnn-gray", family="xdncnn", task="denoise", channels=1, params=304_641, paper=_PAPER,
                description="xDnCNN for gray images, the paper's layout (conv → BN → xUnit); the authors' released "
                            "weights are xdncnn-2018's layout")
def xdncnn_gray(channels: int = 1, gate: Gate = "gaussian") -> XDnCNN:
    return XDnCNN(channels, depth=9, gate=gate)


@register_model("xdncnn-2018", family="xdncnn", task="denoise", channels=1, params=304_641, paper=_PAPER,
                protocol="dncnn",
                description="xDnCNN as the authors released it (kligvasser/xUnit @ e12a65b, 2018): gray, BN → conv → "
                            "xUnit blocks; loads their xdncnn_res_f64k3k9_s25/s50.pkl; predicts the noise")
def xdncnn_2018() -> XDnCNN:
    return XDnCNN(1, depth=9, gate="gaussian", norm_before_conv=True)


@register_model("xdncnn-ref", family="xdncnn", task="denoise", channels=3, params=333_001, paper=_REF,
                description="g_xdncnn of the reference code: BN → conv → slim xUnit (k 7, sigmoid) blocks, 5×5 output conv, x + body(x)")
def xdncnn_ref(channels: int = 3, blocks: int = 8, features: int = 64, xunit_kernel: int = 7) -> XDnCNNRef:
    return XDnCNNRef(channels, blocks, features, xunit_kernel)


@register_model("xdncnn-ref-gray", family="xdncnn", task="denoise", channels=1, params=409_411, paper=_REF,
                description="g_xdncnn of the reference code for gray images, 10 blocks")
def xdncnn_ref_gray(channels: int = 1, blocks: int = 10, features: int = 64, xunit_kernel: int = 7) -> XDnCNNRef:
    return XDnCNNRef(channels, blocks, features, xunit_kernel)


@register_model("dncnn-ref", family="xdncnn", task="denoise", channels=3, params=302_659, paper=_REF,
                description="g_dncnn, the ReLU baseline of the xUnit reference code (its DnCNN, not the DnCNN paper's): conv → BN → ReLU blocks, 5×5 output conv")
def dncnn_ref(channels: int = 3, blocks: int = 8, features: int = 64) -> DnCNNRef:
    return DnCNNRef(channels, blocks, features)


@register_model("dncnn-s-xunit", family="xdncnn", task="denoise", channels=1, params=644_096, paper=_PAPER,
                description="DnCNN-S with its 16 ReLUs replaced by xUnits (BN, 9×9 depthwise, Gaussian gate)")
def dncnn_s_xunit(channels: int = 1) -> DnCNN:
    return swap_activations(DnCNN(channels, depth=17, batch_norm=True, bias=False), inplace=True)  # type: ignore[return-value]
