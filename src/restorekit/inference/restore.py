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
    model_metadata,
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
    ``forward_chop``, :mod:`.chop`, which its published numbers were measured with). ``options.progress``
    hears (tiles done, total) at the start and after each forward pass (the chop: (0, 1), then (1, 1)).
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
        out = _run_tiles(run, x, plan, device, options.tile_batch or default_tile_batch(plan, device),
                         options.progress)
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
    if options.progress is not None:
        options.progress(0, 1)
    with torch.inference_mode():
        out = chopped(run, x.float(), patch, spec.scale, device=device, tile_batch=tile_batch)
        if options.clamp:
            out.clamp_(0.0, 1.0)
    if options.progress is not None:
        options.progress(1, 1)
    return out


def _run_tiles(
    run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, plan: TilePlan, device: torch.device, tile_batch: int,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    n = x.shape[0]
    s = plan.scale
    oh, ow = plan.out_size
    report = progress or (lambda done, total: None)
    if plan.count == 1:
        outs = []
        report(0, n)
        for start in range(0, n, tile_batch):
            batch = pad_to_size(x[start:start + tile_batch].to(device), plan.tile_h, plan.tile_w)
            outs.append(run(batch)[..., :oh, :ow].to(x.device))
            report(min(start + tile_batch, n), n)
        return torch.cat(outs)  # a fresh tensor even for one batch: never a view of the caller's input

    wy = {y0: tile_window(plan.tile_h * s, j == 0, j == len(plan.ys) - 1, plan.margin * s, plan.ramp * s)
          for j, y0 in enumerate(plan.ys)}
    wx = {x0: tile_window(plan.tile_w * s, j == 0, j == len(plan.xs) - 1, plan.margin * s, plan.ramp * s)
          for j, x0 in enumerate(plan.xs)}
    jobs = [(i, y0, x0) for i in range(n) for y0 in plan.ys for x0 in plan.xs]
    out: torch.Tensor | None = None
    weight = torch.zeros(oh, ow, device=x.device)
    report(0, len(jobs))
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
        report(start + len(batch), len(jobs))
    assert out is not None
    return out.div_(weight)


# BT.601 full-range YCbCr as JPEG (JFIF) and PIL define it, chroma centred on 0.5 in [0, 1] units:
# Cb = (B − Y)/1.772, Cr = (R − Y)/1.402, and exactly that solved back for R, G, B.
_YCC = torch.tensor([[0.299, 0.587, 0.114],
                     [-0.299 / 1.772, -0.587 / 1.772, 0.886 / 1.772],
                     [0.701 / 1.402, -0.587 / 1.402, -0.114 / 1.402]], dtype=torch.float64)
_YCC_INV = torch.tensor([[1.0, 0.0, 1.402],
                         [1.0, -0.114 * 1.772 / 0.587, -0.299 * 1.402 / 0.587],
                         [1.0, 1.772, 0.0]], dtype=torch.float64)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB in [0, 1] → (Y, Cb, Cr), full range, chroma offset 0.5 (JPEG's YCbCr)."""
    out = torch.einsum("ij,njhw->nihw", _YCC.to(x.device, x.dtype), x)
    out[:, 1:] += 0.5
    return out


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_ycbcr`."""
    centred = torch.cat([x[:, :1], x[:, 1:] - 0.5], 1)
    return torch.einsum("ij,njhw->nihw", _YCC_INV.to(x.device, x.dtype), centred)


def restore_channels(model: nn.Module, x: torch.Tensor, options: InferenceOptions | None = None) -> torch.Tensor:
    """:func:`restore_tensor` for gray or RGB N×C×H×W images whatever the model takes.

    A gray image through a colour model is replicated and comes back gray (the mean of the outputs). An
    RGB image through a gray model comes back RGB: with ``options.color="y"`` the model restores its
    luminance and the chroma is kept (upscaled with MATLAB bicubic for super-resolution), with
    ``"per-channel"`` it restores R, G and B each as a gray image.
    """
    options = options or InferenceOptions()
    want = model_metadata(model).channels
    have = x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 4 else None
    if want == 3 and have == 1:
        return restore_tensor(model, x.expand(-1, 3, -1, -1), options).mean(1, keepdim=True)
    if not (want == 1 and have == 3):
        return restore_tensor(model, x, options)
    check_options(options)  # a bad colour mode fails before the conversion
    n, _, h, w = x.shape
    if options.color == "per-channel":
        out = restore_tensor(model, x.reshape(n * 3, 1, h, w), options)
        return out.reshape(n, 3, *out.shape[-2:])
    ycc = rgb_to_ycbcr(x.float())
    y = restore_tensor(model, ycc[:, :1], options)
    chroma = ycc[:, 1:]
    if chroma.shape[-2:] != y.shape[-2:]:
        from ..degradations.sr import imresize

        chroma = imresize(chroma, size=(y.shape[-2], y.shape[-1]))
    out = ycbcr_to_rgb(torch.cat([y, chroma.to(y.device)], 1))
    return out.clamp_(0.0, 1.0) if options.clamp else out


def restore_pixels(model: nn.Module, pixels: Any, options: InferenceOptions | None = None, *,
                   name: str = "image") -> Any:
    """Restore one H×W×C float image in [0, 1] (numpy); the result has the input's channel count (gray
    and RGB go through any gray or colour model, see :func:`restore_channels`)."""
    from ..io import image_to_tensor, tensor_to_image

    want, have = model_metadata(model).channels, pixels.shape[-1]
    if want and have != want and {have, want} != {1, 3}:
        raise RestoreKitError(f"{name} has {have} channel(s) but the model takes {want}")
    return tensor_to_image(restore_channels(model, image_to_tensor(pixels), options))
