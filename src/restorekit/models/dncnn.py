"""DnCNN (Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian Denoiser", TIP 2017).

A plain stack of 3×3 convolutions that predicts the noise; ``forward`` returns the clean estimate
``x − body(x)``. Two forms share one class: the trained form (bias-free convs followed by BatchNorm,
as SaoYan/DnCNN-PyTorch trains it) and the released form (BatchNorm folded into biased convs, as the
MatConvNet models and KAIR ship them). Layer indices in ``body`` follow those layouts, so converting
their checkpoints is a prefix rename.
"""

from __future__ import annotations

import torch
from torch import nn

from .fold import fold_batchnorm
from .registry import create_model, register_model


class DnCNN(nn.Module):
    """``depth`` convolutions: conv+ReLU, (depth−2)×[conv(+BN)+ReLU], conv."""

    def __init__(
        self,
        channels: int = 1,
        depth: int = 17,
        features: int = 64,
        batch_norm: bool = True,
        bias: bool = False,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if depth < 3:
            raise ValueError("DnCNN needs depth >= 3")
        self.channels, self.depth = channels, depth
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1, bias=bias), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(features, features, 3, padding=1, bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm2d(features, eps=bn_eps, momentum=bn_momentum))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(features, channels, 3, padding=1, bias=bias))
        self.body = nn.Sequential(*layers)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the reference training code (SaoYan/DnCNN-PyTorch, after the MatConvNet original): He
        # init for convs and tiny BN scales (N(0, sqrt(2/9/64)) clipped to ±0.025), so the network
        # starts near "predict no noise"; with BN scales of 1 early training is many times slower.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.weight.normal_(0.0, (2.0 / 9.0 / 64.0) ** 0.5).clamp_(-0.025, 0.025)
                nn.init.zeros_(m.bias)

    @property
    def output_layer(self) -> str:
        """The conv that makes the residual (zero it and the network is the identity)."""
        return f"body.{len(self.body) - 1}"

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """The network's own output: the estimated noise (residual)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


_PAPER = "Zhang et al., Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising, TIP 2017"


@register_model("dncnn-s", family="dncnn", task="denoise", channels=1, params=556_032, paper=_PAPER,
                description="DnCNN-S, 17 layers, one noise level; trained form (conv without bias + BN), as SaoYan/DnCNN-PyTorch")
def dncnn_s(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=17, batch_norm=True, bias=False)


@register_model("dncnn-s-folded", family="dncnn", task="denoise", channels=1, params=555_137, paper=_PAPER,
                description="DnCNN-S, 17 biased convs (BN folded), as the MatConvNet release and KAIR")
def dncnn_s_folded(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=17, batch_norm=False, bias=True)


@register_model("dncnn-b", family="dncnn", task="denoise", channels=1, params=667_008, paper=_PAPER,
                description="DnCNN-B, 20 layers, blind (sigma in [0, 55]); trained form (conv without bias + BN)")
def dncnn_b(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=20, batch_norm=True, bias=False)


@register_model("dncnn-b-folded", family="dncnn", task="denoise", channels=1, params=665_921, paper=_PAPER,
                description="DnCNN-B, 20 biased convs (BN folded), as GD_Gray_Blind.mat")
def dncnn_b_folded(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=20, batch_norm=False, bias=True)


@register_model("cdncnn-b-folded", family="dncnn", task="denoise", channels=3, params=668_227, paper=_PAPER,
                description="CDnCNN-B, colour blind denoiser, 20 biased convs (BN folded), as GD_Color_Blind.mat")
def cdncnn_b_folded(channels: int = 3) -> DnCNN:
    return DnCNN(channels, depth=20, batch_norm=False, bias=True)


@register_model("cdncnn-b", family="dncnn", task="denoise", channels=3, params=None, paper=_PAPER,
                description="CDnCNN-B, colour blind denoiser, 20 layers; trained form (conv without bias + BN)")
def cdncnn_b(channels: int = 3) -> DnCNN:
    return DnCNN(channels, depth=20, batch_norm=True, bias=False)


# DnCNN-3 is one network for three tasks; the SR tasks take the low-resolution image upscaled with
# MATLAB's bicubic imresize first (Demo_test_DnCNN3.m), JPEG deblocking and denoising the image as is.
_DNCNN3_TASKS = {"denoise": "", "sr-x2": "bicubic-up-2", "sr-x3": "bicubic-up-3", "sr-x4": "bicubic-up-4", "jpeg": ""}


@register_model("dncnn3-folded", family="dncnn", task="denoise", channels=1, params=665_921, paper=_PAPER,
                tasks=tuple(_DNCNN3_TASKS), scales=(1, 2, 3, 4, 1), task_inputs=dict(_DNCNN3_TASKS),
                description="DnCNN-3: one gray model for denoising, x2/3/4 super-resolution (after bicubic) and JPEG deblocking, as DnCNN3.mat")
def dncnn3_folded(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=20, batch_norm=False, bias=True)


@register_model("dncnn-color", family="dncnn", task="denoise", channels=3, params=559_363,
                paper="colour DnCNN of the seed blog: 17 biased convs with BatchNorm",
                description="colour DnCNN, 17 biased convs + BN, 3 channels")
def dncnn_color(channels: int = 3) -> DnCNN:
    return DnCNN(channels, depth=17, batch_norm=True, bias=True)


@register_model("dncnn-9", family="dncnn", task="denoise", channels=1, params=260_096, paper=_PAPER,
                description="9-layer DnCNN (conv without bias + BN), the baseline the xUnit paper compares xDnCNN with")
def dncnn_9(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=9, batch_norm=True, bias=False)


@register_model("dncnn", family="dncnn", task="denoise", channels=1, params=None, paper=_PAPER,
                description="DnCNN of any depth, width and layer form: converted files whose layout no named variant has")
def dncnn_any(channels: int = 1, depth: int = 17, features: int = 64, batch_norm: bool = True,
              bias: bool = False, bn_eps: float = 1e-5) -> DnCNN:
    return DnCNN(channels, depth=depth, features=features, batch_norm=batch_norm, bias=bias, bn_eps=bn_eps)


# The trained forms whose released (folded) form is a named variant.
_FOLDED = {"dncnn-s": "dncnn-s-folded", "dncnn-b": "dncnn-b-folded", "cdncnn-b": "cdncnn-b-folded"}


def fold_dncnn(model: DnCNN) -> DnCNN:
    """A trained-form DnCNN as the released layout (``dncnn-s-folded`` etc.): biased convs and ReLUs only."""
    if not isinstance(model, DnCNN):
        raise TypeError("fold_dncnn takes a DnCNN")
    fused = fold_batchnorm(model)
    convs = [m for m in fused.body if isinstance(m, nn.Conv2d)]
    info = getattr(model, "info", None)
    name = _FOLDED.get(info.name) if info is not None else None
    out = (create_model(name, channels=model.channels) if name
           else DnCNN(model.channels, model.depth, convs[0].out_channels, batch_norm=False, bias=True))
    with torch.no_grad():
        for src, dst in zip(convs, (m for m in out.body if isinstance(m, nn.Conv2d))):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias if src.bias is not None else torch.zeros_like(dst.bias))
    return out.eval()
