"""IPT (Chen et al., "Pre-Trained Image Processing Transformer", CVPR 2021), as huawei-noah/Pretrained-IPT.

One convolutional head and tail per task around a shared transformer body. The body cuts the head's
feature map into ``patch_dim``×``patch_dim`` patches (256 tokens of 576 = 3·3·64 features for the
default 48×48 input), runs 12 pre-LN encoder layers and 12 pre-LN decoder layers whose queries carry a
learned per-task embedding, and folds the tokens back. The fold has a fixed size, so the model takes
exactly ``patch_size``×``patch_size`` inputs; larger images are tiled by the inference path, by default
with the reference's ``forward_chop`` (:mod:`restorekit.inference.chop`: 48-px windows every 12 px, the
central 24 px of each kept and averaged), which is how IPT's published numbers were measured;
``tiling="blend"`` (``--tiling blend``) gives restorekit's generic blended tiles instead.

Module and parameter names follow the reference's ``model.state_dict()`` (``sub_mean``, ``head.i``,
``body.encoder.layers.j.self_attn.in_proj_weight``, ``body.query_embed``, ``tail.i``, …), so its
checkpoints load unchanged. Inputs are RGB in 0..``rgb_range`` (255); ``sub_mean``/``add_mean`` are
frozen 1×1 convolutions that remove and restore the DIV2K mean.

``MeanShift``, ``ResBlock``, ``Upsampler`` and ``default_conv`` are EDSR's blocks (the reference's
``model/common.py``); other EDSR-derived families can share them.
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RestoreKitError
from .registry import register_model

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)

TASK_SCALES: dict[str, int] = {
    "sr-x2": 2, "sr-x3": 3, "sr-x4": 4, "derain": 1, "denoise-30": 1, "denoise-50": 1, "denoise": 1,
}
# Head/tail/query index order of the six-task pre-training model: the MindSpore release's training
# data pipeline (src/data/bicubic.py) draws idx 0..2 = bicubic x2/x3/x4, 3 = rain, 4 = σ30, 5 = σ50.
PRETRAIN_TASKS: tuple[str, ...] = ("sr-x2", "sr-x3", "sr-x4", "derain", "denoise-30", "denoise-50")


def default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """'Same' convolution for odd kernels."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """Frozen 1×1 conv adding ``sign``·``rgb_range``·mean (and dividing by std) per channel."""

    def __init__(
        self,
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        rgb_std: Sequence[float] = (1.0, 1.0, 1.0),
        sign: int = -1,
    ) -> None:
        super().__init__(3, 3, kernel_size=1)
        # Values computed on the CPU so that building under torch.device("meta") stays cheap.
        std = torch.tensor(rgb_std, dtype=torch.float32, device="cpu")
        eye = torch.eye(3, device="cpu").view(3, 3, 1, 1)
        mean = torch.tensor(rgb_mean, dtype=torch.float32, device="cpu")
        with torch.no_grad():
            self.weight.copy_(eye / std.view(3, 1, 1, 1))
            self.bias.copy_(sign * rgb_range * mean / std)
        # Frozen but still parameters, as in the reference: counted, saved, loaded, never trained.
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """EDSR residual block: conv, (BN), act, conv, (BN), scaled and added to the input."""

    def __init__(
        self,
        n_feats: int,
        kernel_size: int,
        bias: bool = True,
        bn: bool = False,
        act: nn.Module | None = None,
        res_scale: float = 1.0,
        conv: Callable[..., nn.Module] = default_conv,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(2):
            layers.append(conv(n_feats, n_feats, kernel_size, bias=bias))
            if bn:
                layers.append(nn.BatchNorm2d(n_feats))
            if i == 0:
                layers.append(act if act is not None else nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mul(self.res_scale) + x


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling: log2(scale)×(conv→4C, shuffle 2) or conv→9C, shuffle 3; empty for scale 1."""

    def __init__(
        self,
        scale: int,
        n_feats: int,
        bn: bool = False,
        act: str | None = None,
        bias: bool = True,
        conv: Callable[..., nn.Module] = default_conv,
    ) -> None:
        if scale >= 1 and scale & (scale - 1) == 0:
            steps = [2] * int(math.log2(scale))
        elif scale == 3:
            steps = [3]
        else:
            raise ValueError(f"Upsampler supports scales 2^n and 3, not {scale}")
        layers: list[nn.Module] = []
        for s in steps:
            layers += [conv(n_feats, s * s * n_feats, 3, bias=bias), nn.PixelShuffle(s)]
            if bn:
                layers.append(nn.BatchNorm2d(n_feats))
            if act == "relu":
                layers.append(nn.ReLU(inplace=True))
            elif act == "prelu":
                layers.append(nn.PReLU(n_feats))
        super().__init__(*layers)


def _attention(dim: int, heads: int, dropout: float, out_bias: bool) -> nn.MultiheadAttention:
    attn = nn.MultiheadAttention(dim, heads, dropout=dropout, bias=False)
    if out_bias:
        # PyTorch 1.6/1.7 always gave out_proj a bias, so checkpoints saved with them carry one.
        attn.out_proj.bias = nn.Parameter(torch.zeros(dim))
    return attn


def _with_pos(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


class EncoderLayer(nn.Module):
    """Pre-LN encoder layer; ``pos`` (if any) is added to queries and keys only."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, no_norm: bool, out_bias: bool) -> None:
        super().__init__()
        self.self_attn = _attention(dim, heads, dropout, out_bias)
        self.linear1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1: nn.Module = nn.Identity() if no_norm else nn.LayerNorm(dim)
        self.norm2: nn.Module = nn.Identity() if no_norm else nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.self_attn.in_proj_weight, a=math.sqrt(5))

    def forward(self, src: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        y = self.norm1(src)
        qk = _with_pos(y, pos)
        src = src + self.dropout1(self.self_attn(qk, qk, y, need_weights=False)[0])
        y = self.linear2(self.dropout(F.relu(self.linear1(self.norm2(src)))))
        return src + self.dropout2(y)


class DecoderLayer(nn.Module):
    """Pre-LN decoder layer: self-attention, cross-attention to ``memory``, FFN; task queries on q/k."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, no_norm: bool, out_bias: bool) -> None:
        super().__init__()
        self.self_attn = _attention(dim, heads, dropout, out_bias)
        self.multihead_attn = _attention(dim, heads, dropout, out_bias)
        self.linear1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1: nn.Module = nn.Identity() if no_norm else nn.LayerNorm(dim)
        self.norm2: nn.Module = nn.Identity() if no_norm else nn.LayerNorm(dim)
        self.norm3: nn.Module = nn.Identity() if no_norm else nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        pos: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        y = self.norm1(tgt)
        qk = _with_pos(y, query_pos)
        tgt = tgt + self.dropout1(self.self_attn(qk, qk, y, need_weights=False)[0])
        y = self.norm2(tgt)
        y = self.multihead_attn(_with_pos(y, query_pos), _with_pos(memory, pos), memory, need_weights=False)[0]
        tgt = tgt + self.dropout2(y)
        y = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(tgt)))))
        return tgt + self.dropout3(y)


class _Stack(nn.Module):
    """``layers`` applied in turn (the reference's TransformerEncoder/Decoder)."""

    def __init__(self, layer: nn.Module, num_layers: int) -> None:
        super().__init__()
        # Deep copies of one layer: every layer starts from the same weights, as in the reference.
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, *args, **kwargs)
        return x


class LearnedPositionalEncoding(nn.Module):
    def __init__(self, seq_length: int, dim: int) -> None:
        super().__init__()
        self.pe = nn.Embedding(seq_length, dim)
        # Persistent, as in the reference: its checkpoints contain this buffer.
        self.register_buffer("position_ids", torch.arange(seq_length).unsqueeze(0))

    def forward(self) -> torch.Tensor:
        return self.pe(self.position_ids)


class VisionTransformer(nn.Module):
    """IPT body: unfold → linear encoding → encoder → task-query decoder → MLP head → fold."""

    def __init__(
        self,
        img_dim: int,
        patch_dim: int,
        num_channels: int,
        num_heads: int,
        num_layers: int,
        num_queries: int,
        dropout_rate: float = 0.0,
        no_norm: bool = False,
        no_mlp: bool = False,
        pos_every: bool = False,
        no_pos: bool = False,
        attn_out_bias: bool = False,
    ) -> None:
        super().__init__()
        if img_dim % patch_dim:
            raise RestoreKitError(f"patch_size {img_dim} is not a multiple of patch_dim {patch_dim}")
        if pos_every and no_pos:
            raise RestoreKitError("pos_every needs position encodings (no_pos=False)")
        dim = num_channels * patch_dim * patch_dim
        if dim % num_heads:
            raise RestoreKitError(f"token dimension {dim} is not divisible by num_heads {num_heads}")
        hidden = 4 * dim
        self.img_dim, self.patch_dim, self.dim = img_dim, patch_dim, dim
        self.seq_length = (img_dim // patch_dim) ** 2
        self.no_mlp, self.pos_every, self.no_pos = no_mlp, pos_every, no_pos
        if not no_mlp:
            self.linear_encoding = nn.Linear(dim, dim)
            self.mlp_head = nn.Sequential(
                nn.Linear(dim, hidden), nn.Dropout(dropout_rate), nn.ReLU(),
                nn.Linear(hidden, dim), nn.Dropout(dropout_rate),
            )
            # One query per task covering all tokens at once: (num_queries, seq_length·dim).
            self.query_embed = nn.Embedding(num_queries, dim * self.seq_length)
        self.encoder = _Stack(EncoderLayer(dim, num_heads, hidden, dropout_rate, no_norm, attn_out_bias), num_layers)
        self.decoder = _Stack(DecoderLayer(dim, num_heads, hidden, dropout_rate, no_norm, attn_out_bias), num_layers)
        if not no_pos:
            self.position_encoding = LearnedPositionalEncoding(self.seq_length, dim)
        self.dropout_layer1 = nn.Dropout(dropout_rate)
        if no_norm:
            # Without LayerNorm the reference rescales every linear layer of the body to keep activations bounded.
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=1 / m.weight.size(1))

    def forward(self, x: torch.Tensor, query_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (folded feature map, patch features N×L×D before folding)."""
        n = x.shape[0]
        # Sequence-first (L, N, D), as nn.MultiheadAttention's default layout in the reference.
        x = F.unfold(x, self.patch_dim, stride=self.patch_dim).permute(2, 0, 1).contiguous()
        query_pos = None
        if not self.no_mlp:
            x = self.dropout_layer1(self.linear_encoding(x)) + x
            query_pos = self.query_embed.weight[query_idx].view(-1, 1, self.dim).expand(-1, n, -1)
        pos = None if self.no_pos else self.position_encoding().transpose(0, 1)
        if self.pos_every:
            x = self.encoder(x, pos=pos)
            x = self.decoder(x, x, pos=pos, query_pos=query_pos)
        else:
            x = self.encoder(x if pos is None else x + pos)
            x = self.decoder(x, x, query_pos=query_pos)
        if not self.no_mlp:
            x = self.mlp_head(x) + x
        tokens = x.transpose(0, 1)
        out = F.fold(tokens.transpose(1, 2), self.img_dim, self.patch_dim, stride=self.patch_dim)
        return out, tokens


class IPT(nn.Module):
    """Multi-head, multi-tail IPT; ``forward(x, task)`` picks the head, tail and decoder query by task.

    ``x`` is N×3×``patch_size``×``patch_size`` RGB in 0..``rgb_range``; the output is ``scale`` times
    larger in the same range. ``return_features=True`` also returns the body's patch features
    (N×L×D, L = (patch_size/patch_dim)², D = n_feats·patch_dim²), used by the contrastive loss.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        patch_size: int = 48,
        patch_dim: int = 3,
        n_feats: int = 64,
        num_heads: int = 12,
        num_layers: int = 12,
        num_queries: int | None = None,
        dropout_rate: float = 0.0,
        no_norm: bool = False,
        no_mlp: bool = False,
        pos_every: bool = False,
        no_pos: bool = False,
        rgb_range: float = 255.0,
        attn_out_bias: bool = False,
    ) -> None:
        super().__init__()
        unknown = [t for t in tasks if t not in TASK_SCALES]
        if not tasks or unknown:
            raise RestoreKitError(f"IPT tasks must be among {', '.join(TASK_SCALES)}; got {list(tasks)}")
        self.tasks = tuple(tasks)
        self.scales = tuple(TASK_SCALES[t] for t in self.tasks)
        self.patch_size = patch_size
        num_queries = len(self.tasks) if num_queries is None else num_queries
        if not no_mlp and num_queries < len(self.tasks):
            raise RestoreKitError(f"num_queries {num_queries} < number of tasks {len(self.tasks)}")
        kernel_size = 3
        act = nn.ReLU(inplace=True)
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.ModuleList(
            nn.Sequential(
                default_conv(3, n_feats, kernel_size),
                ResBlock(n_feats, 5, act=act),
                ResBlock(n_feats, 5, act=act),
            )
            for _ in self.tasks
        )
        self.body = VisionTransformer(
            patch_size, patch_dim, n_feats, num_heads, num_layers, num_queries, dropout_rate,
            no_norm=no_norm, no_mlp=no_mlp, pos_every=pos_every, no_pos=no_pos, attn_out_bias=attn_out_bias,
        )
        self.tail = nn.ModuleList(
            nn.Sequential(Upsampler(s, n_feats), default_conv(n_feats, 3, kernel_size)) for s in self.scales
        )

    def task_index(self, task: str | int | None) -> int:
        """Index of ``task`` (name or index); ``None`` is the only task of a single-task model."""
        if task is None:
            if len(self.tasks) == 1:
                return 0
            raise RestoreKitError(f"this IPT model has several tasks; pass task= one of {', '.join(self.tasks)}")
        if isinstance(task, int) and not isinstance(task, bool):
            if 0 <= task < len(self.tasks):
                return task
            raise RestoreKitError(f"task index {task} out of range 0..{len(self.tasks) - 1} ({', '.join(self.tasks)})")
        if isinstance(task, str):
            name = task.lower()
            if name in self.tasks:
                return self.tasks.index(name)
            # A generic "denoise" model (ipt-denoise) serves any noise level it was trained for.
            if name.startswith("denoise-") and "denoise" in self.tasks:
                return self.tasks.index("denoise")
        raise RestoreKitError(f"unknown IPT task {task!r}; this model has {', '.join(self.tasks)}")

    def forward(
        self, x: torch.Tensor, task: str | int | None = None, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        idx = self.task_index(task)
        if tuple(x.shape[-2:]) != (self.patch_size, self.patch_size):
            raise RestoreKitError(
                f"IPT takes exactly {self.patch_size}×{self.patch_size} inputs, got "
                f"{x.shape[-2]}×{x.shape[-1]}; tile larger images into {self.patch_size}×{self.patch_size} patches"
            )
        x = self.head[idx](self.sub_mean(x))
        res, features = self.body(x, idx)
        out = self.add_mean(self.tail[idx](res + x))
        return (out, features) if return_features else out


_PAPER = "Chen et al., Pre-Trained Image Processing Transformer, CVPR 2021"
_CONFIG_PARAMS = [p for p in inspect.signature(IPT.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]


def _config_signature(factory: Callable[..., IPT]) -> Callable[..., IPT]:
    # The factories take IPT's keyword-only sizes; expose them so that model_info validates argument names.
    factory.__signature__ = inspect.Signature(_CONFIG_PARAMS, return_annotation=IPT)  # type: ignore[attr-defined]
    return factory


def _meta(task: str, tasks: tuple[str, ...]) -> dict[str, Any]:
    scales = tuple(TASK_SCALES[t] for t in tasks)
    return dict(family="ipt", task=task, channels=3, input_range=255.0, size_multiple=48, color_order="rgb",
                scale=scales[0] if len(scales) == 1 else 1, tasks=tasks, scales=scales, fixed_size=True,
                protocol="ipt", tiling="chop", paper=_PAPER)


# Larger images run through the reference's forward_chop (restorekit.inference.chop), the protocol of
# IPT's published numbers; tiling="blend" selects the generic blended tiles instead.
_FIXED = "; takes exactly 48×48 inputs (larger images: the reference's forward_chop tiling)"


@register_model("ipt-sr-x2", params=115_460_443, **_meta("sr", ("sr-x2",)),
                description="IPT fine-tuned for x2 super-resolution (IPT_sr2.pt)" + _FIXED)
@_config_signature
def ipt_sr_x2(**config: Any) -> IPT:
    return IPT(("sr-x2",), **config)


@register_model("ipt-sr-x3", params=115_645_083, **_meta("sr", ("sr-x3",)),
                description="IPT fine-tuned for x3 super-resolution (IPT_sr3.pt)" + _FIXED)
@_config_signature
def ipt_sr_x3(**config: Any) -> IPT:
    return IPT(("sr-x3",), **config)


@register_model("ipt-sr-x4", params=115_608_155, **_meta("sr", ("sr-x4",)),
                description="IPT fine-tuned for x4 super-resolution (IPT_sr4.pt)" + _FIXED)
@_config_signature
def ipt_sr_x4(**config: Any) -> IPT:
    return IPT(("sr-x4",), **config)


@register_model("ipt-denoise", params=115_312_731, **_meta("denoise", ("denoise",)),
                description="IPT fine-tuned for colour Gaussian denoising, one noise level per checkpoint "
                            "(IPT_denoise30.pt, IPT_denoise50.pt)" + _FIXED)
@_config_signature
def ipt_denoise(**config: Any) -> IPT:
    return IPT(("denoise",), **config)


@register_model("ipt-derain", params=115_312_731, **_meta("derain", ("derain",)),
                description="IPT fine-tuned for rain-streak removal (IPT_derain.pt)" + _FIXED)
@_config_signature
def ipt_derain(**config: Any) -> IPT:
    return IPT(("derain",), **config)


@register_model("ipt-pretrain", params=118_892_394, **_meta("multi", PRETRAIN_TASKS),
                description="IPT pre-training model: six heads/tails/queries (x2, x3, x4, derain, σ30, σ50)" + _FIXED)
@_config_signature
def ipt_pretrain(**config: Any) -> IPT:
    return IPT(PRETRAIN_TASKS, **config)
