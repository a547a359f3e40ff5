"""MATLAB-compatible bicubic ``imresize``, the one super-resolution benchmarks (and IPT) make their inputs with.

Same arithmetic as MATLAB's ``imresize(..., 'bicubic')`` and KAIR/BasicSR's ``imresize_np``: Keys' cubic with
a = −0.5, a kernel widened by 1/scale when down-scaling with antialiasing, output pixel ``i`` (1-based)
centred at ``i/scale + (1 − 1/scale)/2``, symmetric (edge-repeating) borders, weights renormalised per output
pixel, and the dimension with the smaller scale resized first. No rounding: MATLAB rounds uint8 images,
here images are floats.
"""

from __future__ import annotations

import math

import torch

from ..errors import RestoreKitError
from .blur import _as_batch, _unbatch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def resize_matrix(in_len: int, out_len: int, scale: float, *, antialias: bool = True) -> torch.Tensor:
    """The out_len×in_len float64 matrix that resizes one dimension as MATLAB's ``imresize`` does."""
    width = 4.0 / scale if scale < 1 and antialias else 4.0
    u = torch.arange(1, out_len + 1, dtype=torch.float64) / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None]  # 1-based, may fall outside
    dist = u[:, None] - idx
    wts = scale * _cubic(dist * scale) if scale < 1 and antialias else _cubic(dist)
    wts = wts / wts.sum(1, keepdim=True)
    # Mirror with the edge pixel repeated: MATLAB's aux = [1:in, in:-1:1] indexed modulo 2·in.
    m = (idx.long() - 1) % (2 * in_len)
    src = torch.where(m < in_len, m, 2 * in_len - 1 - m)
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, src, wts)
    return mat


def _sizes(h: int, w: int, scale: float | tuple[float, float] | None, size: tuple[int, int] | None
           ) -> tuple[tuple[float, float], tuple[int, int]]:
    if (scale is None) == (size is None):
        raise RestoreKitError("imresize: give exactly one of scale and size")
    if size is not None:
        try:
            oh, ow = size
        except (TypeError, ValueError):
            raise RestoreKitError(f"imresize: size must be (height, width), got {size!r}") from None
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (oh, ow)):
            raise RestoreKitError(f"imresize: size must be positive integers, got {size!r}")
        return (oh / h, ow / w), (oh, ow)
    sh, sw = (scale, scale) if isinstance(scale, (int, float)) else tuple(scale)  # type: ignore[misc]
    for s in (sh, sw):
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise RestoreKitError(f"imresize: scale must be a positive number, got {scale!r}")
    return (float(sh), float(sw)), (math.ceil(h * sh), math.ceil(w * sw))


def _resize(x: torch.Tensor, scales: tuple[float, float], sizes: tuple[int, int], antialias: bool) -> torch.Tensor:
    work = x if x.dtype == torch.float64 else x.float()
    for dim in sorted((0, 1), key=lambda d: scales[d]):  # stable: height first on ties, like MATLAB
        in_len = work.shape[2 + dim]
        if scales[dim] == 1 and sizes[dim] == in_len:
            continue  # the weights are exactly a delta: skip the arithmetic
        mat = resize_matrix(in_len, sizes[dim], scales[dim], antialias=antialias).to(work.device, work.dtype)
        work = (torch.einsum("oi,nchi->ncho", mat, work) if dim == 1
                else torch.einsum("oi,nciw->ncow", mat, work))
    return work.to(x.dtype)


def imresize(img: torch.Tensor, scale: float | tuple[float, float] | None = None, *,
             size: tuple[int, int] | None = None, antialias: bool = True) -> torch.Tensor:
    """Resize C×H×W or N×C×H×W like MATLAB's ``imresize(img, scale, 'bicubic')``.

    ``scale`` is one factor or (height, width) factors (output ``ceil(H·scale)``), or give the output
    ``size`` (height, width) instead, as MATLAB's ``imresize(img, [h w])``.
    """
    x, squeeze = _as_batch(img, "imresize")
    if not isinstance(antialias, bool):
        raise RestoreKitError(f"imresize: antialias must be True or False, got {antialias!r}")
    scales, sizes = _sizes(x.shape[2], x.shape[3], scale, size)
    return _unbatch(_resize(x, scales, sizes, antialias), squeeze)


def _check_factor(factor: int, what: str) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise RestoreKitError(f"{what}: factor must be a positive integer, got {factor!r}")
    return factor


def bicubic_downsample(img: torch.Tensor, factor: int) -> torch.Tensor:
    """The SR benchmarks' low-resolution input: ``imresize(img, 1/factor)``, size ``ceil(H/factor)``.

    Crop the high-resolution image to a multiple of ``factor`` first (modcrop) for aligned pairs.
    """
    x, squeeze = _as_batch(img, "bicubic_downsample")
    f = _check_factor(factor, "bicubic_downsample")
    sizes = (-(-x.shape[2] // f), -(-x.shape[3] // f))  # integer ceil: 1/f is inexact in floating point
    return _unbatch(_resize(x, (1 / f, 1 / f), sizes, True), squeeze)


def bicubic_upsample(img: torch.Tensor, factor: int) -> torch.Tensor:
    """``imresize(img, factor)``: the bicubic baseline and the input of pre-upsampling networks (SRCNN, VDSR)."""
    x, squeeze = _as_batch(img, "bicubic_upsample")
    f = _check_factor(factor, "bicubic_upsample")
    return _unbatch(_resize(x, (float(f), float(f)), (x.shape[2] * f, x.shape[3] * f), True), squeeze)
