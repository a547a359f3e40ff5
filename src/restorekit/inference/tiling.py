"""Tiling arithmetic, receptive field and the x8 ensemble.

Tiling: overlapping tiles of at most ``tile`` input pixels, evenly spaced from border to border (no
tile is padded unless the image is smaller than a tile). Each tile's interior sides are
weighted by a window over the ``overlap``: the outer third is discarded (pixels that saw the tile's
artificial border) and the middle third is a raised-cosine cross-fade with the neighbour; weights are
normalised. With ``overlap`` >= 3 x the receptive-field radius the result equals whole-image inference;
the automatic overlap is exactly that for models whose receptive field is small.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import dihedral, dihedral_inverse
from .prepare import (
    InferenceOptions,
    ModelSpec,
    RestoreModule,
    model_spec,
    prepare_model,
    weights_fingerprint,
)

# Receptive-field bounds up to this are used as they are; wider ones are probed on images of at most
# _PROBE_SIZE² pixels, where an unbounded field gets an effective radius (gradient > 1e-3 of its peak).
_EXACT_BOUND = 24
_PROBE_SIZE = 128
_EFFECTIVE_THRESHOLD = 1e-3

# --------------------------------------------------------------------------------------------------
# receptive field


_RADIUS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, int]] = weakref.WeakKeyDictionary()


def receptive_radius(model: nn.Module, *, task: str | None = None, device: torch.device | None = None) -> int:
    """Receptive-field radius in input pixels (cached per model and weights).

    First an upper bound from the convolution and pooling layers' kernel, dilation and stride (exact for
    plain stacks such as DnCNN, whose result is then used as is). Wider bounds are checked by back-
    propagating from one output pixel on a probe image: the exact support when it fits the probe, else,
    for very wide or unbounded fields (global pooling or normalisation), the effective radius: the
    farthest input whose gradient of the residual (output − input) exceeds 1e-3 of its peak. The probe
    runs on ``device`` (a prepared fp32 copy there when the model lives elsewhere).
    """
    fingerprint = (weights_fingerprint(model), task)  # per task too: DnCNN-3's SR inputs are upscaled first
    cached = _RADIUS.get(model)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    spec = model_spec(model, task)
    if spec.fixed is not None:
        radius = spec.fixed // 12  # global within a patch; overlap 3r is IPT's reference shave of 12 px at 48
    else:
        here = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
        if device is None or device == here:
            wrapper = RestoreModule(model, spec.info, task=spec.task, borrowed=True)
        else:
            wrapper = prepare_model(model, InferenceOptions(device=str(device), task=task))
        bound = _conv_bound(wrapper, spec) + wrapper.input_radius  # e.g. the bicubic upscaling of DnCNN-3's SR
        radius = bound
        if bound > _EXACT_BOUND:
            radius = min(bound, _probe(wrapper, spec, min(2 * bound + 2, _PROBE_SIZE)))
    _RADIUS[model] = (fingerprint, radius)
    return radius


def _probe_input(wrapper: RestoreModule, spec: ModelSpec, size: int) -> torch.Tensor:
    device = next(itertools.chain(wrapper.parameters(), wrapper.buffers()), torch.empty(0)).device
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, spec.info.channels or 3, size, size, generator=gen).to(device)


def _conv_bound(wrapper: RestoreModule, spec: ModelSpec) -> int:
    """Sum over convolution/pooling layers of their half-extent, in input pixels (strides counted).

    An upper bound for any wiring of those layers; resampling (±1 pixel at its scale) is not counted.
    """
    size = round_up(32, spec.multiple)
    total = 0.0

    def hook(mod: nn.Module, inputs: Any, out: torch.Tensor) -> None:
        nonlocal total
        step = size / out.shape[-1]  # input pixels per output pixel of this layer
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            half = max((k - 1) * d for k, d in zip(mod.kernel_size, mod.dilation)) / 2
            total += half * (step / mod.stride[-1] if isinstance(mod, nn.Conv2d) else step)
        else:
            k, s = mod.kernel_size, mod.stride
            k, s = (k if isinstance(k, int) else max(k)), (s if isinstance(s, int) else max(s))
            total += (k - 1) / 2 * step / s

    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.AvgPool2d, nn.MaxPool2d)
    handles = [m.register_forward_hook(hook) for m in wrapper.modules() if isinstance(m, layers)]
    try:
        with torch.no_grad():
            wrapper(_probe_input(wrapper, spec, size))
    finally:
        for h in handles:
            h.remove()
    return math.ceil(total)


def _probe(wrapper: RestoreModule, spec: ModelSpec, size: int) -> int:
    size = round_up(size, spec.multiple)
    x = _probe_input(wrapper, spec, size)
    c = size // 2
    with torch.inference_mode(False), torch.enable_grad():
        x.requires_grad_(True)
        y = wrapper(x)
        # The residual, so that a model's identity skip does not dwarf everything else.
        r = y[..., c, c] - x[..., c, c] if spec.scale == 1 else y[..., c * spec.scale, c * spec.scale]
        (grad,) = torch.autograd.grad(r.sum(), x)
    g = grad.detach().abs().sum((0, 1)).float().cpu()
    exact = (g > 0).nonzero()
    radius = int((exact - c).abs().max()) if len(exact) else 0
    if radius < c - 1:
        return radius
    effective = (g > _EFFECTIVE_THRESHOLD * g.max()).nonzero()
    return int((effective - c).abs().max()) if len(effective) else 0


# --------------------------------------------------------------------------------------------------
# tiling arithmetic


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go. Sizes in input pixels; every tile is ``tile_h``×``tile_w`` (multiples of the
    model's size multiple, at most the requested tile) and is padded only where the image is smaller
    than a tile."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    margin: int
    ramp: int
    scale: int = 1

    @property
    def out_size(self) -> tuple[int, int]:
        return self.height * self.scale, self.width * self.scale

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)


def round_up(n: int, m: int) -> int:
    """The smallest multiple of ``m`` that is >= ``n``."""
    return -(-n // m) * m


def tile_starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Starts of as few ``tile``-long windows as cover ``length`` with at least ``overlap`` between
    neighbours, evenly spaced, the first at 0 and the last ending at ``length`` (none sticks out
    unless ``length`` < ``tile``)."""
    if length <= tile:
        return (0,)
    n = -(-(length - tile) // (tile - overlap)) + 1
    return tuple(i * (length - tile) // (n - 1) for i in range(n))


def tile_layout(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, tuple[int, ...]]:
    """(tile size, starts) along one dimension: as few tiles of at most ``tile`` as cover ``length`` with
    at least ``overlap`` between neighbours, then shrunk to the smallest size (a multiple of
    ``multiple``) that still does, evenly spaced, the first at 0 and the last ending at ``length``.

    Shrinking spreads the surplus that a fixed size would pile into the last overlap: up to a third
    fewer pixels to compute (1500×2000 in 512-pixel tiles: 3.8 instead of 5.2 megapixels).
    """
    if length <= tile:
        return round_up(length, multiple), (0,)
    n = len(tile_starts(length, tile, overlap))
    size = min(tile, round_up(-(-(length + (n - 1) * overlap) // n), multiple))
    return size, tile_starts(length, size, overlap)


def split_overlap(overlap: int) -> tuple[int, int]:
    """(discarded margin, cross-fade ramp) of an overlap: outer thirds discarded, middle third faded."""
    margin = overlap // 3
    return margin, overlap - 2 * margin


def plan_tiles(height: int, width: int, *, tile: int | None, overlap: int, multiple: int = 1, scale: int = 1) -> TilePlan:
    """Tile layout for an image; ``tile=None`` is one tile covering the image padded to ``multiple``."""
    if tile is None:
        th, tw = round_up(height, multiple), round_up(width, multiple)
        return TilePlan(height, width, th, tw, (0,), (0,), 0, 0, scale)
    tile = tile // multiple * multiple
    th, ys = tile_layout(height, tile, overlap, multiple)
    tw, xs = tile_layout(width, tile, overlap, multiple)
    margin, ramp = split_overlap(overlap)
    return TilePlan(height, width, th, tw, ys, xs, margin, ramp, scale)


def tile_window(length: int, lead: bool, trail: bool, margin: int, ramp: int) -> torch.Tensor:
    """1-D blending weights of a tile: zero over ``margin``, raised-cosine over ``ramp`` on interior sides."""
    w = torch.ones(length)
    k = torch.arange(1, ramp + 1, dtype=torch.float32)
    rise = torch.sin(math.pi / 2 * k / (ramp + 1)) ** 2  # rise[i] + rise[-1 - i] == 1: aligned tiles sum to 1
    if not lead:
        w[:margin] = 0
        w[margin:margin + ramp] *= rise
    if not trail:
        if margin:
            w[length - margin:] = 0
        w[length - margin - ramp:length - margin] *= rise.flip(0)
    return w


def pad_to_size(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pad bottom/right to h×w: reflection where the image is larger than the pad, else replication."""
    for dim, size in ((-2, h), (-1, w)):
        pad = size - t.shape[dim]
        if pad > 0:
            spec = (0, 0, 0, pad) if dim == -2 else (0, pad, 0, 0)
            t = F.pad(t, spec, mode="reflect" if pad < t.shape[dim] else "replicate")
    return t


# --------------------------------------------------------------------------------------------------
# ensemble


def with_ensemble(run: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def ensemble(x: torch.Tensor) -> torch.Tensor:
        acc = run(x)
        for k in range(1, 8):
            acc = acc + dihedral_inverse(run(dihedral(x, k)), k)
        return acc / 8

    return ensemble


# Pixels per forward pass when batching tiles. A CPU gains nothing from batching tiles that already fill
# its cores, only memory (MPRNet-denoise: about 1.7 GB per 512² tile in fp32), so one 512² tile per pass; a
# GPU is kept busy with four. Small tiles (IPT's 48²) are batched up to the same pixel count.
_PASS_PIXELS = {"cuda": 4 * 512 * 512}
_PASS_PIXELS_OTHER = 512 * 512
_MAX_TILE_BATCH = 64


def default_tile_batch(plan: TilePlan, device: torch.device) -> int:
    """Tiles per forward pass when the caller does not say: as many as fill the device's pixel budget."""
    budget = _PASS_PIXELS.get(device.type, _PASS_PIXELS_OTHER)
    return max(1, min(_MAX_TILE_BATCH, budget // (plan.tile_h * plan.tile_w)))
