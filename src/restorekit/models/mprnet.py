"""MPRNet (Zamir et al., "Multi-Stage Progressive Image Restoration", CVPR 2021).

Three stages: an encoder-decoder on the four quadrants, one on the two halves, and an
original-resolution subnetwork (ORSNet) on the whole image, linked by supervised attention modules
(SAM) and cross-stage feature fusion. ``forward`` returns the three stage images, final first, as the
reference code (swz30/MPRNet) does; the training loss supervises all three.

Module names follow the reference so that its checkpoints convert by key. One difference: the
reference builds a single ``nn.PReLU`` and registers it inside every channel-attention block (55
state-dict keys, one tensor). Here the model registers it once as ``act`` and the blocks only call it
(:class:`SharedActivation`), so the state dict, optimisers and EMA copies see one parameter under one
key. The converter in ``restorekit.convert.mprnet`` collapses the 55 reference keys.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import register_model


def _conv(in_ch: int, out_ch: int, kernel_size: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias)


class SharedActivation(nn.Module):
    """Calls an activation owned (registered) by another module, without registering it here.

    Parameter-free in the state dict, so the reference's ``body.1`` slot stays empty and the other
    indices keep their reference names. ``deepcopy`` keeps the sharing; ``nn.DataParallel`` replicas
    would still call the original module (use DDP).
    """

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "shared", act)  # bypasses nn.Module registration on purpose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(x)

    def extra_repr(self) -> str:
        return f"shared={self.shared!r}"


class CALayer(nn.Module):
    """Channel attention: global average pool → 1×1 reduce → ReLU → 1×1 expand → sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4, bias: bool = False) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class CAB(nn.Module):
    """Channel attention block: conv → act → conv → CA, plus the input. ``act`` is shared, not owned."""

    def __init__(self, channels: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module) -> None:
        super().__init__()
        # CA before body, as the reference registers them: parameters() then follow its order.
        self.CA = CALayer(channels, reduction, bias)
        self.body = nn.Sequential(
            _conv(channels, channels, kernel_size, bias),
            SharedActivation(act),
            _conv(channels, channels, kernel_size, bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.CA(self.body(x)) + x


class SAM(nn.Module):
    """Supervised attention module: returns (attended features, stage image = conv(x) + input image)."""

    def __init__(self, n_feat: int, kernel_size: int = 1, bias: bool = False, channels: int = 3) -> None:
        super().__init__()
        self.conv1 = _conv(n_feat, n_feat, kernel_size, bias)
        self.conv2 = _conv(n_feat, channels, kernel_size, bias)
        self.conv3 = _conv(channels, n_feat, kernel_size, bias)

    def forward(self, x: torch.Tensor, x_img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.conv2(x) + x_img
        feats = self.conv1(x) * torch.sigmoid(self.conv3(img)) + x
        return feats, img


class DownSample(nn.Module):
    """Bilinear ×0.5, then a bias-free 1×1 conv adding ``extra`` channels."""

    def __init__(self, in_ch: int, extra: int) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
            nn.Conv2d(in_ch, in_ch + extra, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x)


class UpSample(nn.Module):
    """Bilinear ×2, then a bias-free 1×1 conv from ``out_ch + extra`` down to ``out_ch`` channels."""

    def __init__(self, out_ch: int, extra: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(out_ch + extra, out_ch, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class SkipUpSample(UpSample):
    """:class:`UpSample` followed by adding the skip connection."""

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.up(x) + skip


def _cabs(n: int, channels: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(*(CAB(channels, kernel_size, reduction, bias, act) for _ in range(n)))


class Encoder(nn.Module):
    """Three levels of 2 CABs; widths n, n+s, n+2s. With ``csff``, fuses the previous stage's features."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool,
                 scale_unetfeats: int, csff: bool) -> None:
        super().__init__()
        widths = [n_feat + i * scale_unetfeats for i in range(3)]
        self.encoder_level1 = _cabs(2, widths[0], kernel_size, reduction, bias, act)
        self.encoder_level2 = _cabs(2, widths[1], kernel_size, reduction, bias, act)
        self.encoder_level3 = _cabs(2, widths[2], kernel_size, reduction, bias, act)
        self.down12 = DownSample(widths[0], scale_unetfeats)
        self.down23 = DownSample(widths[1], scale_unetfeats)
        self.csff = csff
        if csff:
            for i, w in enumerate(widths, 1):
                setattr(self, f"csff_enc{i}", nn.Conv2d(w, w, 1, bias=bias))
            for i, w in enumerate(widths, 1):
                setattr(self, f"csff_dec{i}", nn.Conv2d(w, w, 1, bias=bias))

    def _fuse(self, level: int, x: torch.Tensor, enc: list[torch.Tensor] | None,
              dec: list[torch.Tensor] | None) -> torch.Tensor:
        if enc is None or dec is None:
            return x
        return x + getattr(self, f"csff_enc{level}")(enc[level - 1]) + getattr(self, f"csff_dec{level}")(dec[level - 1])

    def forward(self, x: torch.Tensor, encoder_outs: list[torch.Tensor] | None = None,
                decoder_outs: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        enc1 = self._fuse(1, self.encoder_level1(x), encoder_outs, decoder_outs)
        enc2 = self._fuse(2, self.encoder_level2(self.down12(enc1)), encoder_outs, decoder_outs)
        enc3 = self._fuse(3, self.encoder_level3(self.down23(enc2)), encoder_outs, decoder_outs)
        return [enc1, enc2, enc3]


class Decoder(nn.Module):
    """Three levels of 2 CABs, coarse to fine; skips pass through a CAB before being added."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool,
                 scale_unetfeats: int) -> None:
        super().__init__()
        widths = [n_feat + i * scale_unetfeats for i in range(3)]
        self.decoder_level1 = _cabs(2, widths[0], kernel_size, reduction, bias, act)
        self.decoder_level2 = _cabs(2, widths[1], kernel_size, reduction, bias, act)
        self.decoder_level3 = _cabs(2, widths[2], kernel_size, reduction, bias, act)
        self.skip_attn1 = CAB(widths[0], kernel_size, reduction, bias, act)
        self.skip_attn2 = CAB(widths[1], kernel_size, reduction, bias, act)
        self.up21 = SkipUpSample(widths[0], scale_unetfeats)
        self.up32 = SkipUpSample(widths[1], scale_unetfeats)

    def forward(self, outs: list[torch.Tensor]) -> list[torch.Tensor]:
        enc1, enc2, enc3 = outs
        dec3 = self.decoder_level3(enc3)
        dec2 = self.decoder_level2(self.up32(dec3, self.skip_attn2(enc2)))
        dec1 = self.decoder_level1(self.up21(dec2, self.skip_attn1(enc1)))
        return [dec1, dec2, dec3]


class ORB(nn.Module):
    """Original-resolution block: ``num_cab`` CABs and a conv, plus the input."""

    def __init__(self, channels: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool,
                 num_cab: int) -> None:
        super().__init__()
        # The reference's closing conv ignores ``bias`` (always bias-free); kept for checkpoint fidelity.
        self.body = nn.Sequential(
            *(CAB(channels, kernel_size, reduction, bias, act) for _ in range(num_cab)),
            _conv(channels, channels, kernel_size, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ORSNet(nn.Module):
    """Three ORBs at full resolution, each followed by adding (up-sampled) stage-2 encoder/decoder features."""

    def __init__(self, n_feat: int, scale_orsnetfeats: int, kernel_size: int, reduction: int, act: nn.Module,
                 bias: bool, scale_unetfeats: int, num_cab: int) -> None:
        super().__init__()
        width = n_feat + scale_orsnetfeats
        self.orb1 = ORB(width, kernel_size, reduction, act, bias, num_cab)
        self.orb2 = ORB(width, kernel_size, reduction, act, bias, num_cab)
        self.orb3 = ORB(width, kernel_size, reduction, act, bias, num_cab)
        self.up_enc1 = UpSample(n_feat, scale_unetfeats)
        self.up_dec1 = UpSample(n_feat, scale_unetfeats)
        self.up_enc2 = nn.Sequential(UpSample(n_feat + scale_unetfeats, scale_unetfeats), UpSample(n_feat, scale_unetfeats))
        self.up_dec2 = nn.Sequential(UpSample(n_feat + scale_unetfeats, scale_unetfeats), UpSample(n_feat, scale_unetfeats))
        for i in (1, 2, 3):
            setattr(self, f"conv_enc{i}", nn.Conv2d(n_feat, width, 1, bias=bias))
        for i in (1, 2, 3):
            setattr(self, f"conv_dec{i}", nn.Conv2d(n_feat, width, 1, bias=bias))

    def forward(self, x: torch.Tensor, encoder_outs: list[torch.Tensor], decoder_outs: list[torch.Tensor]) -> torch.Tensor:
        x = self.orb1(x) + self.conv_enc1(encoder_outs[0]) + self.conv_dec1(decoder_outs[0])
        x = self.orb2(x) + self.conv_enc2(self.up_enc1(encoder_outs[1])) + self.conv_dec2(self.up_dec1(decoder_outs[1]))
        x = self.orb3(x) + self.conv_enc3(self.up_enc2(encoder_outs[2])) + self.conv_dec3(self.up_dec2(decoder_outs[2]))
        return x


class MPRNet(nn.Module):
    """Three-stage MPRNet; ``forward`` returns ``[stage3, stage2, stage1]`` images (final first), unclamped.

    Height and width must be multiples of 8 (quadrants, then two ×0.5 levels); the model does not pad.
    """

    def __init__(self, channels: int = 3, n_feat: int = 96, scale_unetfeats: int = 48, scale_orsnetfeats: int = 32,
                 num_cab: int = 8, kernel_size: int = 3, reduction: int = 4, bias: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.act = nn.PReLU()  # the single PReLU of every CAB (one scalar, as in the reference)
        act = self.act
        self.shallow_feat1 = nn.Sequential(_conv(channels, n_feat, kernel_size, bias),
                                           CAB(n_feat, kernel_size, reduction, bias, act))
        self.shallow_feat2 = nn.Sequential(_conv(channels, n_feat, kernel_size, bias),
                                           CAB(n_feat, kernel_size, reduction, bias, act))
        self.shallow_feat3 = nn.Sequential(_conv(channels, n_feat, kernel_size, bias),
                                           CAB(n_feat, kernel_size, reduction, bias, act))
        self.stage1_encoder = Encoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats, csff=False)
        self.stage1_decoder = Decoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats)
        self.stage2_encoder = Encoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats, csff=True)
        self.stage2_decoder = Decoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats)
        self.stage3_orsnet = ORSNet(n_feat, scale_orsnetfeats, kernel_size, reduction, act, bias, scale_unetfeats, num_cab)
        self.sam12 = SAM(n_feat, kernel_size=1, bias=bias, channels=channels)
        self.sam23 = SAM(n_feat, kernel_size=1, bias=bias, channels=channels)
        self.concat12 = _conv(n_feat * 2, n_feat, kernel_size, bias)
        self.concat23 = _conv(n_feat * 2, n_feat + scale_orsnetfeats, kernel_size, bias)
        self.tail = _conv(n_feat + scale_orsnetfeats, channels, kernel_size, bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        top, bot = x[:, :, :h], x[:, :, h:]

        # Stage 1: each quadrant separately; features re-joined into halves before decoding.
        quads = [q for half in (top, bot) for q in (half[..., :w], half[..., w:])]
        feats = [self.stage1_encoder(self.shallow_feat1(q)) for q in quads]
        feat1_top = [torch.cat(lr, 3) for lr in zip(feats[0], feats[1])]
        feat1_bot = [torch.cat(lr, 3) for lr in zip(feats[2], feats[3])]
        res1_top = self.stage1_decoder(feat1_top)
        res1_bot = self.stage1_decoder(feat1_bot)
        sam_top, img1_top = self.sam12(res1_top[0], top)
        sam_bot, img1_bot = self.sam12(res1_bot[0], bot)
        stage1_img = torch.cat([img1_top, img1_bot], 2)

        # Stage 2: each half, with cross-stage fusion of stage 1's encoder and decoder features.
        x2_top = self.concat12(torch.cat([self.shallow_feat2(top), sam_top], 1))
        x2_bot = self.concat12(torch.cat([self.shallow_feat2(bot), sam_bot], 1))
        feat2_top = self.stage2_encoder(x2_top, feat1_top, res1_top)
        feat2_bot = self.stage2_encoder(x2_bot, feat1_bot, res1_bot)
        feat2 = [torch.cat(tb, 2) for tb in zip(feat2_top, feat2_bot)]
        res2 = self.stage2_decoder(feat2)
        sam_full, stage2_img = self.sam23(res2[0], x)

        # Stage 3: full resolution.
        x3 = self.concat23(torch.cat([self.shallow_feat3(x), sam_full], 1))
        x3 = self.stage3_orsnet(x3, feat2, res2)
        return [self.tail(x3) + x, stage2_img, stage1_img]


def prelu_alias_keys(model: MPRNet) -> list[str]:
    """The reference's state-dict keys for the shared PReLU (one per CAB), in module order."""
    return [f"{name}.body.1.weight" for name, m in model.named_modules() if isinstance(m, CAB)]


# n_feat, scale_unetfeats, scale_orsnetfeats of the three official models.
WIDTHS: dict[str, tuple[int, int, int]] = {
    "mprnet-deblur": (96, 48, 32),
    "mprnet-denoise": (80, 48, 32),
    "mprnet-derain": (40, 20, 16),
}

_PAPER = "Zamir et al., Multi-Stage Progressive Image Restoration, CVPR 2021"
_COMMON: dict[str, Any] = dict(family="mprnet", channels=3, input_range=1.0, size_multiple=8, color_order="rgb",
               output_index=0, paper=_PAPER)


def _build(name: str, channels: int) -> MPRNet:
    n_feat, s_unet, s_ors = WIDTHS[name]
    return MPRNet(channels, n_feat=n_feat, scale_unetfeats=s_unet, scale_orsnetfeats=s_ors)


@register_model("mprnet-deblur", task="deblur", protocol="mprnet", params=20_127_073, **_COMMON,
                description="MPRNet for motion deblurring (GoPro), n_feat 96; returns [stage3, stage2, stage1]")
def mprnet_deblur(channels: int = 3) -> MPRNet:
    return _build("mprnet-deblur", channels)


@register_model("mprnet-denoise", task="denoise-real", protocol="mprnet-sidd", params=15_741_025, **_COMMON,
                description="MPRNet for real-noise denoising (SIDD), n_feat 80; returns [stage3, stage2, stage1]")
def mprnet_denoise(channels: int = 3) -> MPRNet:
    return _build("mprnet-denoise", channels)


@register_model("mprnet-derain", task="derain", protocol="mprnet-derain", params=3_637_249, **_COMMON,
                description="MPRNet for rain-streak removal (Rain13K), n_feat 40; returns [stage3, stage2, stage1]")
def mprnet_derain(channels: int = 3) -> MPRNet:
    return _build("mprnet-derain", channels)
