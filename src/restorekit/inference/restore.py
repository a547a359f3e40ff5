"""The one entry point: :func:`restore_tensor` runs any model on N x C x H x W [0, 1] images.

Callers pass float images in [0, 1], RGB (or gray), and get the restored images back in the same
convention, ``scale`` times larger for super-resolution models.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import RestoreKitError
from .chop import chop, chop_ensemble
from .prepare import (
    InferenceOptions,
    ModelSpec,
    check_image,
    check_options,
    check_tiling,
    model_spec,
    prepare_model,
    resolve_device,
    resolve_tiling,
)
from .tiling import (
    TilePlan,
    default_tile_batch,
    pad_to_size,
    plan_tiles,
    receptive_radius,
    round_up,
    tile_window,
    with_ensemble,
)

# --------------------------------------------------------------------------------------------------
# the one entry point


def resolve_overlap(
    model: nn.Module, spec: ModelSpec, tile: int, overlap: int | None, device: torch.device | None = None
) -> int:
    """The user's overlap (checked against the tile by check_options) or the automatic one: 3 × receptive radius,
    at most half the tile (with a warning: such tiles are too small for exact results)."""
    if overlap is not None:
        return overlap
    radius = receptive_radius(model, task=spec.task, device=device)
    auto = 3 * radius
    if 2 * auto > tile:
        warnings.warn(
            f"tile {tile} is small for model {spec.info.name} (receptive-field radius {radius}): overlap "
            f"limited to {tile // 2}; tiles of at least {round_up(2 * auto, spec.multiple)} give seam-free results",
            stacklevel=3,
        )
        auto = tile // 2
    return auto


def restore_tensor(model: nn.Module, x: torch.Tensor, options: InferenceOptions | None = None) -> torch.Tensor:
    """Restore N×C×H×W images in [0, 1] (RGB or gray); returns N×C×(H·s)×(W·s) float32 on ``x``'s device.

    Pads to the model's size multiple (or tiles, when ``options.tile`` is set or the model takes a fixed
    size), runs as ``options`` say, crops back and clamps to [0, 1] unless ``options.clamp`` is False.
    Fixed-size models run with ``options.tiling`` (default theirs: IPT uses the reference's
    ``forward_chop``, :mod:`.chop`, which its published numbers were measured with).
    """
    options = options or InferenceOptions()
    spec = model_spec(model, options.task)
    check_image(x, spec.info)
    device = resolve_device(options.device)
    check_options(options, device, model)
    if resolve_tiling(spec, options) == "chop":
        return _restore_chop(model, x, options, spec, device)
    h, w = x.shape[-2:]
    tile = check_tiling(spec.fixed if spec.fixed is not None else options.tile, options.overlap, spec)
    overlap = 0
    if tile is not None:
        if h > tile or w > tile or options.overlap is not None:
            overlap = resolve_overlap(model, spec, tile, options.overlap, device)
    plan = plan_tiles(h, w, tile=tile, overlap=overlap, multiple=spec.multiple, scale=spec.scale)

    run: Callable[[torch.Tensor], torch.Tensor] = prepare_model(model, options)
    if options.ensemble:
        run = with_ensemble(run)
    x = x.float()
    with torch.inference_mode():
        out = _run_tiles(run, x, plan, device, options.tile_batch or default_tile_batch(plan, device))
        if options.clamp:
            out.clamp_(0.0, 1.0)
    return out


def _restore_chop(
    model: nn.Module, x: torch.Tensor, options: InferenceOptions, spec: ModelSpec, device: torch.device
) -> torch.Tensor:
    assert spec.fixed is not None
    patch = spec.fixed
    tile_batch = options.tile_batch or default_tile_batch(plan_tiles(patch, patch, tile=None, overlap=0), device)
    run = prepare_model(model, options)
    chopped = chop_ensemble if options.ensemble else chop
    with torch.inference_mode():
        out = chopped(run, x.float(), patch, spec.scale, device=device, tile_batch=tile_batch)
        if options.clamp:
            out.clamp_(0.0, 1.0)
    return out


def _run_tiles(
    run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, plan: TilePlan, device: torch.device, tile_batch: int
) -> torch.Tensor:
    n = x.shape[0]
    s = plan.scale
    oh, ow = plan.out_size
    if plan.count == 1:
        outs = []
        for start in range(0, n, tile_batch):
            batch = pad_to_size(x[start:start + tile_batch].to(device), plan.tile_h, plan.tile_w)
            outs.append(run(batch)[..., :oh, :ow].to(x.device))
        return torch.cat(outs)  # a fresh tensor even for one batch: never a view of the caller's input

    wy = {y0: tile_window(plan.tile_h * s, j == 0, j == len(plan.ys) - 1, plan.margin * s, plan.ramp * s)
          for j, y0 in enumerate(plan.ys)}
    wx = {x0: tile_window(plan.tile_w * s, j == 0, j == len(plan.xs) - 1, plan.margin * s, plan.ramp * s)
          for j, x0 in enumerate(plan.xs)}
    jobs = [(i, y0, x0) for i in range(n) for y0 in plan.ys for x0 in plan.xs]
    out: torch.Tensor | None = None
    weight = torch.zeros(oh, ow, device=x.device)
    for start in range(0, len(jobs), tile_batch):
        batch = jobs[start:start + tile_batch]
        tiles = torch.cat([
            pad_to_size(x[i:i + 1, :, y0:y0 + plan.tile_h, x0:x0 + plan.tile_w].to(device), plan.tile_h, plan.tile_w)
            for i, y0, x0 in batch
        ])
        y = run(tiles).to(x.device)
        if out is None:
            out = torch.zeros(n, y.shape[1], oh, ow, device=x.device)
        for (i, y0, x0), yt in zip(batch, y):
            ys, xs = y0 * s, x0 * s
            hh, ww = min(yt.shape[-2], oh - ys), min(yt.shape[-1], ow - xs)
            win = (wy[y0][:hh, None] * wx[x0][None, :ww]).to(x.device)
            out[i, :, ys:ys + hh, xs:xs + ww] += yt[:, :hh, :ww] * win
            if i == 0:
                weight[ys:ys + hh, xs:xs + ww] += win
    assert out is not None
    return out.div_(weight)


def match_channels(pixels: Any, channels: int, *, allow_gray_to_rgb: bool = True, name: str = "image") -> Any:
    """Gray images run through colour models (replicated); colour images through gray models is an error."""
    have = pixels.shape[-1]
    if have == channels:
        return pixels
    if have == 1 and channels == 3 and allow_gray_to_rgb:
        return pixels.repeat(3, axis=-1)
    raise RestoreKitError(f"{name} has {have} channel(s) but the model takes {channels}; "
                          + ("use a colour model" if have == 3 else "use a gray model"))


def restore_pixels(model: nn.Module, pixels: Any, options: InferenceOptions | None = None, *,
                   name: str = "image") -> Any:
    """Restore one H×W×C float image in [0, 1] (numpy); the result has the input's channel count
    (a gray image through a colour model comes back gray)."""
    from ..io import image_to_tensor, tensor_to_image

    channels = pixels.shape[-1]
    out = tensor_to_image(restore_tensor(model, image_to_tensor(match_channels(pixels, model.info.channels, name=name)),
                                         options))
    if channels == 1 and out.shape[-1] == 3:
        out = out.mean(axis=-1, keepdims=True)
    return out
