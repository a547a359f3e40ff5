"""PSNR and SSIM on batches of images, with every evaluation convention named and selectable.

Papers disagree on how they measure: float or uint8 (rounded or truncated), RGB, gray or which
luma Y, a cropped border, and for SSIM the window, the border handling and the covariance
estimator. Each of these is a keyword here, and :data:`PROTOCOLS` names the combinations used
by published code, so that a reported number can be reproduced by name.

Measurement runs in float64. :func:`ssim_map` and :func:`filter2d` are the single SSIM
implementation of the package; the training loss in :mod:`restorekit.losses` reuses them in
float32.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import RestoreKitError
from .registry import Registry

__all__ = [
    "MetricProtocol",
    "PROTOCOLS",
    "list_protocols",
    "get_protocol",
    "psnr",
    "ssim",
    "ssim_map",
    "luminance",
    "filter2d",
    "window_1d",
    "gaussian_window",
    "default_win_size",
]

COLORS = ("as-is", "gray", "y", "y-uint8", "y-edsr", "y-full", "y-full-uint8")
QUANTIZE = (None, "round", "floor")
WINDOWS = ("gaussian", "uniform")
BORDERS = ("valid", "same", "replicate", "symmetric")
CHANNEL_MODES = ("separate", "volume")
CHANNEL_ORDERS = ("rgb", "bgr")
REDUCTIONS = ("mean", "none")


class _Default:
    """Marks a keyword the caller did not pass, so a protocol's value can apply."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()


@dataclass(frozen=True)
class MetricProtocol:
    """A named set of measurement options (see :func:`psnr` / :func:`ssim` for their meaning)."""

    description: str
    data_range: float = 1.0
    quantize: str | None = None
    color: str = "as-is"
    channel_order: str = "rgb"
    crop_border: int = 0
    window: str = "gaussian"
    win_size: int | None = None
    sigma: float = 1.5
    border: str = "valid"
    k1: float = 0.01
    k2: float = 0.03
    sample_covariance: bool = False
    channel_mode: str = "separate"


_BASE = MetricProtocol(description="restorekit defaults: float, all channels, Wang et al. SSIM")

_UNIFORM7 = dict(window="uniform", win_size=7, sample_covariance=True)  # skimage's defaults
_MATLAB_SSIM = dict(border="replicate", channel_mode="volume")  # MATLAB ssim() on an HxWx3 array

PROTOCOLS: Registry[MetricProtocol] = Registry("metric protocol", {
    "dncnn": MetricProtocol(
        description=(
            "DnCNN (Zhang et al. 2017) as reproduced from the released weights: "
            "clamp(output, 0, 1) measured in float without quantisation, on the image as is "
            "(gray for DnCNN-S/B, RGB for CDnCNN), no border crop; SSIM of Wang et al. "
            "(Gaussian 11, sigma 1.5, valid windows, population covariance), averaged over "
            "channels."
        ),
    ),
    "dncnn-matlab": MetricProtocol(
        description=(
            "DnCNN's MATLAB demo (Demo_test_DnCNN.m, Cal_PSNRSSIM): im2uint8 (round) of output and "
            "label, PSNR with peak 255, ssim_index of Wang et al. per channel."
        ),
        quantize="round",
    ),
    "durn-gray": MetricProtocol(
        description=(
            "DuRN (Liu et al. CVPR 2019) Gaussian denoising: output clipped to [0,1], *255 and "
            "truncated to uint8 (astype), gray channel; skimage compare_psnr/compare_ssim with "
            "data_range 255 and skimage's defaults: 7x7 uniform window, sample covariance, "
            "valid windows."
        ),
        quantize="floor",
        color="gray",
        **_UNIFORM7,
    ),
    "durn-rgb": MetricProtocol(
        description=(
            "DuRN real noise, motion blur and haze (RESIDE): RGB truncated to uint8, skimage "
            "PSNR and default SSIM (uniform 7, sample covariance) averaged over the three "
            "channels. "
            "(DuRN's DCPDNData haze test alone measures floats: pass quantize=None.)"
        ),
        quantize="floor",
        **_UNIFORM7,
    ),
    "durn-y": MetricProtocol(
        description=(
            "DuRN rain streaks and raindrops: RGB truncated to uint8, then OpenCV "
            "cvtColor(..., RGB2YCR_CB)[..., 0], i.e. full-range Y = 0.299R+0.587G+0.114B in "
            "OpenCV's 14-bit fixed point rounded to uint8; skimage default SSIM (uniform 7, "
            "sample covariance). Raindrop data is BGR in and out, which gives the same Y."
        ),
        quantize="floor",
        color="y-full-uint8",
        **_UNIFORM7,
    ),
    "mprnet": MetricProtocol(
        description=(
            "MPRNet (Zamir et al. CVPR 2021) deblurring, evaluate_GOPRO_HIDE.m: outputs saved with "
            "skimage img_as_ubyte (round), MATLAB psnr on RGB uint8 and MATLAB ssim(): Gaussian "
            "sigma 1.5, 11 taps, replicate padding, mean over the full map; on an HxWx3 array "
            "MATLAB's ssim treats the channels as a third spatial axis (3-D Gaussian), which "
            "channel_mode='volume' reproduces."
        ),
        quantize="round",
        **_MATLAB_SSIM,
    ),
    "mprnet-sidd": MetricProtocol(
        description=(
            "MPRNet denoising, evaluate_SIDD.m: the float (single) clamped outputs, no "
            "quantisation, MATLAB psnr and ssim() on the RGB array (3-D, replicate) as in 'mprnet'."
        ),
        **_MATLAB_SSIM,
    ),
    "mprnet-derain": MetricProtocol(
        description=(
            "MPRNet deraining, evaluate_PSNR_SSIM.m: img_as_ubyte (round) PNGs read as uint8, "
            "MATLAB rgb2ycbcr on uint8 (BT.601 studio-range Y, itself rounded to uint8), PSNR "
            "peak 255 and Wang's ssim_index (Gaussian 11, sigma 1.5, valid windows)."
        ),
        quantize="round",
        color="y-uint8",
    ),
    "ipt": MetricProtocol(
        description=(
            "IPT (Chen et al. CVPR 2021), utility.calc_psnr (the EDSR code): output quantised "
            "with round, Y from the difference image with EDSR's coefficients "
            "(65.738, 129.057, 25.064)/256 (BT.601 studio Y, not rounded). IPT crops `scale` "
            "pixels per side for super-resolution and none at scale 1: the protocol crops 0, "
            "pass crop_border=scale. IPT reports no SSIM; ssim() uses Wang's defaults."
        ),
        quantize="round",
        color="y-edsr",
    ),
    "matlab": MetricProtocol(
        description=(
            "The classic MATLAB super-resolution evaluation: uint8 images (round), "
            "rgb2ycbcr on uint8 (Y rounded to uint8), PSNR peak 255, Wang's ssim_index "
            "(Gaussian 11, sigma 1.5, valid). Pass crop_border=scale."
        ),
        quantize="round",
        color="y-uint8",
    ),
    "basicsr": MetricProtocol(
        description=(
            "BasicSR calculate_psnr/calculate_ssim with test_y_channel: uint8 (round) images, "
            "MATLAB-style BT.601 studio Y in float (not rounded), SSIM Gaussian 11 / 1.5 valid. "
            "Pass crop_border=scale."
        ),
        quantize="round",
        color="y",
    ),
})


def list_protocols() -> list[str]:
    """Names of the predefined protocols, sorted."""
    return sorted(PROTOCOLS)


def get_protocol(protocol: str | MetricProtocol) -> MetricProtocol:
    """Look up a protocol by name (a :class:`MetricProtocol` is returned as is)."""
    if isinstance(protocol, MetricProtocol):
        return protocol
    return PROTOCOLS.get(protocol)


def _dtype_range(x: Any, y: Any) -> float | None:
    """White of two integer images of one dtype (255 for uint8, 65535 for uint16), as scikit-image
    infers it; None for float input, whose white the protocol says (1.0 by default)."""
    def peak(a: Any) -> float | None:
        if isinstance(a, np.ndarray) and a.dtype.kind in "ui":
            return float(np.iinfo(a.dtype).max)
        if isinstance(a, torch.Tensor) and not a.is_floating_point() and not a.is_complex() and a.dtype != torch.bool:
            return float(torch.iinfo(a.dtype).max)
        return None

    px, py = peak(x), peak(y)
    return px if px is not None and px == py else None


def _resolve(protocol: str | MetricProtocol | None, given: dict[str, Any]) -> MetricProtocol:
    base = _BASE if protocol is None else get_protocol(protocol)
    opts = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not DEFAULT})
    _check_options(opts)
    return opts


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise RestoreKitError(f"unknown {name} {value!r}; expected one of {shown}")


def _check_options(o: MetricProtocol) -> None:
    _choice("quantize", o.quantize, QUANTIZE)
    _choice("color", o.color, COLORS)
    _choice("channel_order", o.channel_order, CHANNEL_ORDERS)
    _choice("window", o.window, WINDOWS)
    _choice("border", o.border, BORDERS)
    _choice("channel_mode", o.channel_mode, CHANNEL_MODES)
    dr = o.data_range
    if isinstance(dr, bool) or not isinstance(dr, (int, float)) or not dr > 0:
        raise RestoreKitError(f"data_range must be a positive number, got {o.data_range!r}")
    if isinstance(o.crop_border, bool) or not isinstance(o.crop_border, int) or o.crop_border < 0:
        raise RestoreKitError(f"crop_border must be a non-negative int, got {o.crop_border!r}")
    if not isinstance(o.sigma, (int, float)) or not o.sigma > 0:
        raise RestoreKitError(f"sigma must be positive, got {o.sigma!r}")
    if o.win_size is not None:
        _check_win_size(o.win_size)
    if o.k1 < 0 or o.k2 < 0:
        raise RestoreKitError(f"k1 and k2 must be non-negative, got {o.k1}, {o.k2}")


def _check_win_size(win_size: int) -> None:
    odd_int = isinstance(win_size, int) and not isinstance(win_size, bool) and win_size % 2 == 1
    if not odd_int or win_size < 3:
        raise RestoreKitError(f"win_size must be an odd int >= 3, got {win_size!r}")


# --------------------------------------------------------------------------- input handling


def _as_tensor(a: Any, name: str) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        if a.dtype == np.bool_ or a.dtype.kind not in "uif":
            raise RestoreKitError(f"{name}: unsupported numpy dtype {a.dtype}")
        if a.ndim == 2:
            t = torch.from_numpy(np.ascontiguousarray(a))[None, None]
        elif a.ndim == 3:
            t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
        else:
            raise RestoreKitError(
                f"{name}: numpy input must be HxW or HxWxC, got shape {a.shape}; "
                "pass a torch tensor NxCxHxW for batches"
            )
        return t
    if isinstance(a, torch.Tensor):
        if a.dtype == torch.bool or a.is_complex():
            raise RestoreKitError(f"{name}: unsupported tensor dtype {a.dtype}")
        if a.ndim == 2:
            return a[None, None]
        if a.ndim == 3:
            return a[None]
        if a.ndim == 4:
            return a
        raise RestoreKitError(
            f"{name}: expected a tensor NxCxHxW, CxHxW or HxW, got shape {tuple(a.shape)}"
        )
    raise RestoreKitError(f"{name}: expected a torch tensor or numpy array, got {type(a).__name__}")


def _working_float(t: torch.Tensor, name: str, data_range: float) -> torch.Tensor:
    if t.is_floating_point():
        return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
    t = t.to(torch.float64)
    if t.numel() and float(t.max()) > data_range:
        raise RestoreKitError(
            f"{name}: integer image has values up to {float(t.max()):g} but data_range is "
            f"{data_range:g}; pass data_range=255 for uint8 images"
        )
    return t


def _quantize(t: torch.Tensor, data_range: float, mode: str) -> torch.Tensor:
    # Scale in the input's own precision, as the reference scripts do (float32 `res *= 255`),
    # so that truncation sees the same products.
    scaled = t * (255.0 / data_range)
    q = torch.floor(scaled) if mode == "floor" else torch.round(scaled)
    return q.clamp(0, 255)


# ITU-R BT.601 studio-range Y on the 0-255 scale from RGB in [0, 1], as MATLAB rgb2ycbcr.
_Y_STUDIO = (65.481, 128.553, 24.966)
# EDSR/IPT calc_psnr coefficients (BT.601 matrix rescaled by 256/255, applied on /256).
_Y_EDSR = (65.738 * 255 / 256, 129.057 * 255 / 256, 25.064 * 255 / 256)
_LUMA_601 = (0.299, 0.587, 0.114)
_CV_Y_FIXED = (4899, 9617, 1868)  # OpenCV's yuv_shift=14 integer coefficients


def _convert_color(
    t: torch.Tensor, color: str, order: str, data_range: float
) -> tuple[torch.Tensor, float]:
    if color == "as-is" or t.shape[1] == 1:
        return t, data_range
    if t.shape[1] != 3:
        raise RestoreKitError(
            f"color={color!r} needs 1 or 3 channels, got {t.shape[1]}; use color='as-is'"
        )
    if order == "bgr":
        t = t.flip(1)
    r, g, b = t[:, 0:1], t[:, 1:2], t[:, 2:3]
    if color in ("gray", "y-full"):
        wr, wg, wb = _LUMA_601
        return wr * r + wg * g + wb * b, data_range
    s = 255.0 / data_range
    if color == "y-full-uint8":
        cr, cg, cb = _CV_Y_FIXED
        y = torch.floor((cr * (r * s) + cg * (g * s) + cb * (b * s) + 8192.0) / 16384.0)
        return y.clamp(0, 255), 255.0
    wr, wg, wb = _Y_EDSR if color == "y-edsr" else _Y_STUDIO
    y = 16.0 + (wr * r + wg * g + wb * b) / data_range
    if color == "y-uint8":
        # MATLAB's uint8 conversion rounds half away from zero and saturates.
        y = torch.floor(y + 0.5).clamp(0, 255)
    return y, 255.0


def luminance(image: Any, color: str = "y") -> torch.Tensor:
    """The one-channel image that a ``color`` option measures, in the image's own [0, 1] units: ``"y"`` is
    MATLAB's rgb2ycbcr Y (BT.601 studio range, 16/255 .. 235/255), ``"gray"`` / ``"y-full"``
    0.299 R + 0.587 G + 0.114 B, ``"y-edsr"`` EDSR's Y. A gray image is returned as is."""
    if color not in ("y", "gray", "y-full", "y-edsr"):
        raise RestoreKitError(f"luminance: color must be 'y', 'gray', 'y-full' or 'y-edsr', got {color!r}")
    t = _as_tensor(image, "image")
    y, scale = _convert_color(t.double() if t.dtype == torch.float64 else t.float(), color, "rgb", 1.0)
    return y / scale if scale != 1.0 else y


def _crop(t: torch.Tensor, border: int) -> torch.Tensor:
    if border == 0:
        return t
    h, w = t.shape[-2:]
    if 2 * border >= h or 2 * border >= w:
        raise RestoreKitError(f"crop_border={border} removes the whole {h}x{w} image")
    return t[..., border : h - border, border : w - border]


def _prepare(x: Any, y: Any, o: MetricProtocol) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Both images as float64 NxCxHxW after quantisation, colour conversion and crop."""
    tx, ty = _as_tensor(x, "x"), _as_tensor(y, "y")
    if tx.shape != ty.shape:
        raise RestoreKitError(
            f"x and y must have the same shape, got {tuple(tx.shape)} and {tuple(ty.shape)}"
        )
    if tx.numel() == 0:
        raise RestoreKitError(f"empty images of shape {tuple(tx.shape)}")
    ty = ty.to(tx.device)
    dr = float(o.data_range)
    out = []
    for t, name in ((tx, "x"), (ty, "y")):
        t = _working_float(t, name, dr)
        if o.quantize is not None:
            t = _quantize(t, dr, o.quantize)
        out.append(t.to(torch.float64))
    dr_eff = 255.0 if o.quantize is not None else dr
    results = []
    for t in out:
        c, d = _convert_color(t, o.color, o.channel_order, dr_eff)
        results.append(_crop(c, o.crop_border))
    return results[0], results[1], d


def _options(protocol: str | MetricProtocol | None, x: Any, y: Any, **given: Any) -> MetricProtocol:
    """The options in effect: those given, then the protocol's; an integer pair without a data range
    takes its dtype's (255 for uint8), as scikit-image does."""
    if given.get("data_range", DEFAULT) is DEFAULT:
        given["data_range"] = _dtype_range(x, y) or DEFAULT
    return _resolve(protocol, given)


def _reduce(per_image: torch.Tensor, reduction: str, x: Any = None) -> torch.Tensor | float:
    """The batch mean (or per image with reduction "none"); a Python float for one image (anything but an
    N×C×H×W tensor), as scikit-image returns."""
    _choice("reduction", reduction, REDUCTIONS)
    if reduction != "mean":
        return per_image
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        return per_image.mean()
    return float(per_image.mean())


# --------------------------------------------------------------------------- PSNR


def psnr(
    x: Any,
    y: Any,
    *,
    data_range: float = DEFAULT,
    quantize: str | None = DEFAULT,
    color: str = DEFAULT,
    channel_order: str = DEFAULT,
    crop_border: int = DEFAULT,
    protocol: str | MetricProtocol | None = None,
    reduction: str = "mean",
) -> torch.Tensor | float:
    """Peak signal-to-noise ratio in dB, 10·log10(peak² / MSE), per image over C×H×W.

    x, y: tensors N×C×H×W, C×H×W or H×W, or numpy arrays H×W or H×W×C, with white at
    ``data_range`` (default 1.0). ``quantize``: None, "round" (half to even, as torch/numpy and
    skimage's img_as_ubyte) or "floor" (truncation, as ``astype(uint8)``) to the 0..255 levels,
    after which the peak is 255. ``color``:

    - "as-is": all channels.
    - "gray" / "y-full": 0.299R + 0.587G + 0.114B (ITU-R 601-2 luma, PIL convert('L') and
      OpenCV's Y, both without rounding; the two names are the same numbers).
    - "y": BT.601 studio-range Y = 16 + 65.481R + 128.553G + 24.966B (RGB in [0,1]), on the
      0-255 scale, as MATLAB rgb2ycbcr on double input; peak 255.
    - "y-uint8": the same Y rounded to uint8, as MATLAB rgb2ycbcr on uint8 input.
    - "y-edsr": studio Y with EDSR/IPT's coefficients (65.738, 129.057, 25.064)/256.
    - "y-full-uint8": OpenCV cvtColor(RGB2YCrCb) on uint8, (4899R + 9617G + 1868B + 2¹³) >> 14.

    Single-channel input passes through every colour mode unchanged. ``channel_order`` ("rgb" or
    "bgr") is the input's order for the conversions. ``crop_border`` pixels are removed from
    each side. ``protocol`` (a name in :data:`PROTOCOLS`) supplies defaults for the options not
    passed explicitly. ``reduction``: "mean" over the batch or "none" (shape N). One image (a
    numpy array, a PIL image or a tensor of fewer than 4 dimensions) gives a Python float, an N×C×H×W
    batch a tensor. Identical images give inf.
    """
    o = _options(
        protocol,
        x,
        y,
        data_range=data_range,
        quantize=quantize,
        color=color,
        channel_order=channel_order,
        crop_border=crop_border,
    )
    _choice("reduction", reduction, REDUCTIONS)
    tx, ty, peak = _prepare(x, y, o)
    mse = (tx - ty).pow(2).flatten(1).mean(dim=1)
    per_image = 10.0 * torch.log10(peak**2 / mse)
    return _reduce(per_image, reduction, x)


# --------------------------------------------------------------------------- SSIM core


def default_win_size(window: str, sigma: float = 1.5) -> int:
    """Window size used when none is given: 7 for uniform (skimage), and for Gaussian
    2·int(3.5σ + 0.5) + 1 as skimage (11 at σ = 1.5, the size of Wang et al. and MATLAB)."""
    _choice("window", window, WINDOWS)
    if window == "uniform":
        return 7
    return 2 * int(3.5 * sigma + 0.5) + 1


def gaussian_window(
    win_size: int, sigma: float, *, dtype: torch.dtype = torch.float64, device: Any = None
) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``win_size`` taps; its outer product is fspecial('gaussian')."""
    _check_win_size(win_size)
    r = win_size // 2
    pos = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(pos**2) / (2.0 * float(sigma) ** 2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def window_1d(
    window: str,
    win_size: int | None,
    sigma: float,
    *,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
) -> torch.Tensor:
    """The separable 1-D window for ``window`` ("gaussian" or "uniform")."""
    _choice("window", window, WINDOWS)
    size = default_win_size(window, sigma) if win_size is None else win_size
    _check_win_size(size)
    if window == "gaussian":
        return gaussian_window(size, sigma, dtype=dtype, device=device)
    return torch.full((size,), 1.0 / size, dtype=dtype, device=device)


def _pad_symmetric(t: torch.Tensor, r: int) -> torch.Tensor:
    # scipy.ndimage's 'reflect' (edge sample repeated: d c b a | a b c d), absent from F.pad.
    h, w = t.shape[-2:]
    if r > h or r > w:
        raise RestoreKitError(f"border='symmetric' needs images of at least {r}x{r}, got {h}x{w}")
    t = torch.cat([t[..., :r, :].flip(-2), t, t[..., h - r :, :].flip(-2)], dim=-2)
    return torch.cat([t[..., :r].flip(-1), t, t[..., w - r :].flip(-1)], dim=-1)


def filter2d(t: torch.Tensor, w1d: torch.Tensor, border: str) -> torch.Tensor:
    """Filter every channel of an N×C×H×W tensor with the separable window ``w1d``.

    border: "valid" (only full windows, output shrinks by len-1), "same" (zero padding),
    "replicate" (edge value) or "symmetric" (mirror including the edge, scipy's 'reflect').
    """
    _choice("border", border, BORDERS)
    n, c, h, w = t.shape
    k = w1d.numel()
    r = k // 2
    flat = t.reshape(n * c, 1, h, w)
    if border == "valid":
        if h < k or w < k:
            raise RestoreKitError(f"images of {h}x{w} are smaller than the {k}x{k} SSIM window")
    elif border == "same":
        flat = F.pad(flat, (r, r, r, r))
    elif border == "replicate":
        flat = F.pad(flat, (r, r, r, r), mode="replicate")
    else:
        flat = _pad_symmetric(flat, r)
    kern = w1d.to(dtype=t.dtype, device=t.device)
    flat = F.conv2d(flat, kern.view(1, 1, k, 1))
    flat = F.conv2d(flat, kern.view(1, 1, 1, k))
    return flat.reshape(n, c, flat.shape[-2], flat.shape[-1])


def _channel_mixing(c: int, w1d: torch.Tensor, border: str) -> torch.Tensor:
    """C×C matrix applying ``w1d`` along the channel axis with the given border rule."""
    r = w1d.numel() // 2
    m = torch.zeros(c, c, dtype=w1d.dtype, device=w1d.device)
    for d in range(c):
        for tap in range(-r, r + 1):
            src = d + tap
            if border == "replicate":
                src = min(max(src, 0), c - 1)
            elif border == "symmetric":
                src %= 2 * c
                src = src if src < c else 2 * c - 1 - src
            elif not 0 <= src < c:
                continue
            m[d, src] += w1d[tap + r]
    return m


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    window: str = "gaussian",
    win_size: int | None = None,
    sigma: float = 1.5,
    border: str = "valid",
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
    channel_mode: str = "separate",
) -> torch.Tensor:
    """Local SSIM of two N×C×H×W tensors, in their dtype and differentiable (no conversions).

    Local means, variances and covariance come from :func:`filter2d`. ``sample_covariance``
    multiplies the (co)variances by NP/(NP-1), NP = win_size², as skimage's
    use_sample_covariance (applied even with Gaussian weights, exactly like skimage).
    ``channel_mode="volume"`` also filters along the channel axis with the same window and
    border, as MATLAB's ssim() does for an H×W×3 array.
    """
    _choice("channel_mode", channel_mode, CHANNEL_MODES)
    if channel_mode == "volume" and border == "valid":
        raise RestoreKitError("channel_mode='volume' needs a padded border, not 'valid'")
    w1d = window_1d(window, win_size, sigma, dtype=x.dtype, device=x.device)
    mix = _channel_mixing(x.shape[1], w1d, border) if channel_mode == "volume" else None

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        f = filter2d(t, w1d, border)
        return f if mix is None else torch.einsum("dc,nchw->ndhw", mix, f)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x * mu_x
    var_y = local_mean(y * y) - mu_y * mu_y
    cov = local_mean(x * y) - mu_x * mu_y
    if sample_covariance:
        npix = w1d.numel() ** (3 if mix is not None else 2)
        norm = npix / (npix - 1.0)
        var_x, var_y, cov = var_x * norm, var_y * norm, cov * norm
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def ssim(
    x: Any,
    y: Any,
    *,
    data_range: float = DEFAULT,
    quantize: str | None = DEFAULT,
    color: str = DEFAULT,
    channel_order: str = DEFAULT,
    crop_border: int = DEFAULT,
    window: str = DEFAULT,
    win_size: int | None = DEFAULT,
    sigma: float = DEFAULT,
    border: str = DEFAULT,
    k1: float = DEFAULT,
    k2: float = DEFAULT,
    sample_covariance: bool = DEFAULT,
    channel_mode: str = DEFAULT,
    protocol: str | MetricProtocol | None = None,
    reduction: str = "mean",
) -> torch.Tensor | float:
    """Structural similarity, the mean of the local SSIM map per image (and over channels).

    Inputs and the options data_range, quantize, color, channel_order, crop_border, protocol
    and reduction are as in :func:`psnr`. SSIM options (defaults are Wang et al.'s):

    - window: "gaussian" (sigma, default 1.5) or "uniform"; win_size defaults to 11 for the
      Gaussian at sigma 1.5 (2·int(3.5σ+0.5)+1 in general, as skimage) and 7 for uniform.
    - border: "valid" averages only full windows (Wang's ssim_index 'valid', and identical to
      skimage, which filters the whole image and crops (win_size-1)/2 from the map);
      "same" zero-pads (pytorch-ssim / DuRN training); "replicate" pads with the edge value
      (MATLAB ssim()); "symmetric" mirrors (scipy 'reflect') — all three average the full map.
    - k1, k2: C1 = (k1·L)², C2 = (k2·L)², L the data range after quantisation/colour.
    - sample_covariance: skimage's use_sample_covariance (its default True); False is Wang's.
    - channel_mode: "separate" (per-channel SSIM averaged, skimage channel_axis) or "volume"
      (MATLAB ssim() on an H×W×3 array: one 3-D SSIM with the window also across channels).

    skimage's ``gaussian_weights=True`` with an explicit ``win_size`` filters with the σ-sized
    Gaussian but crops and normalises with win_size; that mismatch is not reproduced here.
    """
    o = _options(
        protocol,
        x,
        y,
        data_range=data_range,
        quantize=quantize,
        color=color,
        channel_order=channel_order,
        crop_border=crop_border,
        window=window,
        win_size=win_size,
        sigma=sigma,
        border=border,
        k1=k1,
        k2=k2,
        sample_covariance=sample_covariance,
        channel_mode=channel_mode,
    )
    _choice("reduction", reduction, REDUCTIONS)
    tx, ty, peak = _prepare(x, y, o)
    smap = ssim_map(
        tx,
        ty,
        data_range=peak,
        window=o.window,
        win_size=o.win_size,
        sigma=o.sigma,
        border=o.border,
        k1=o.k1,
        k2=o.k2,
        sample_covariance=o.sample_covariance,
        channel_mode=o.channel_mode,
    )
    return _reduce(smap.flatten(1).mean(dim=1), reduction, x)

