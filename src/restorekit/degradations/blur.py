"""Blur: random camera-shake kernels (Boracchi & Foi's trajectory model), Gaussian kernels, and applying them.

Kernels are point-spread functions: ``apply_blur`` convolves (not correlates), so a kernel that is bright
to the right of its centre smears each point to the right.
"""

from __future__ import annotations

import cmath
import math

import torch
import torch.nn.functional as F

from ..errors import RestoreKitError


# --- shared helpers for the degradation modules -------------------------------------------------------------

def _as_batch(img: torch.Tensor, what: str) -> tuple[torch.Tensor, bool]:
    """Validate an image and return it as N×C×H×W, plus whether it came as C×H×W."""
    if not isinstance(img, torch.Tensor):
        raise RestoreKitError(f"{what}: expected a torch.Tensor image, got {type(img).__name__}")
    if not img.is_floating_point():
        raise RestoreKitError(f"{what}: expected a floating-point image in [0, 1], got dtype {img.dtype}")
    if img.ndim not in (3, 4):
        raise RestoreKitError(f"{what}: expected C×H×W or N×C×H×W, got shape {tuple(img.shape)}")
    if img.numel() == 0:
        raise RestoreKitError(f"{what}: empty image of shape {tuple(img.shape)}")
    return (img.unsqueeze(0), True) if img.ndim == 3 else (img, False)


def _unbatch(x: torch.Tensor, squeeze: bool) -> torch.Tensor:
    return x.squeeze(0) if squeeze else x


def _check_generator(generator: torch.Generator | None, what: str) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise RestoreKitError(f"{what}: needs generator=torch.Generator (seeded) for reproducible output")
    if generator.device.type != "cpu":
        raise RestoreKitError(f"{what}: the generator must be a CPU generator (randomness is drawn on the CPU "
                              f"so results match across devices), got {generator.device}")
    return generator


def _check_range(rng: tuple[float, float], what: str, *, lo: float | None = None, hi: float | None = None
                 ) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in rng)
    except (TypeError, ValueError):
        raise RestoreKitError(f"{what} must be a pair (low, high) of numbers, got {rng!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a > b:
        raise RestoreKitError(f"{what} must be (low, high) with low <= high, got {rng!r}")
    if (lo is not None and a < lo) or (hi is not None and b > hi):
        raise RestoreKitError(f"{what} must lie within [{lo}, {hi}], got {rng!r}")
    return a, b


def _uniform(generator: torch.Generator, lo: float, hi: float, n: int = 1) -> torch.Tensor:
    """``n`` float64 draws from U(lo, hi); always consumes the generator so later draws do not shift."""
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def _splat(points: torch.Tensor, weights: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Accumulate weighted sub-pixel points (x, y) into an H×W float64 grid with bilinear weights."""
    x, y = points[:, 0], points[:, 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    grid = torch.zeros(height * width, dtype=torch.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = (x0 + dx).long(), (y0 + dy).long()
        ok = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        grid.index_add_(0, (yi * width + xi)[ok], (w * weights)[ok])
    return grid.view(height, width)


# --- kernels ------------------------------------------------------------------------------------------------

def gaussian_kernel(sigma: float, size: int | None = None, *, sigma_y: float | None = None,
                    angle: float = 0.0) -> torch.Tensor:
    """A normalised (an)isotropic Gaussian PSF, ``size``×``size`` (odd; default ``2·ceil(3σ)+1``).

    ``sigma`` is the standard deviation along the axis rotated by ``angle`` degrees from horizontal,
    ``sigma_y`` (default ``sigma``) across it. ``sigma == 0`` gives a delta.
    """
    sy = sigma if sigma_y is None else sigma_y
    if not (math.isfinite(sigma) and math.isfinite(sy)) or sigma < 0 or sy < 0:
        raise RestoreKitError(f"Gaussian sigma must be finite and >= 0, got {sigma}, {sy}")
    if size is None:
        size = 2 * math.ceil(3 * max(sigma, sy)) + 1
    _check_kernel_size(size)
    r = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    u, v = c * xx + s * yy, -s * xx + c * yy
    # A zero sigma is the limit of a very narrow Gaussian: a delta along that axis.
    eu = (u / sigma) ** 2 if sigma > 0 else torch.where(u.abs() < 1e-9, 0.0, math.inf)
    ev = (v / sy) ** 2 if sy > 0 else torch.where(v.abs() < 1e-9, 0.0, math.inf)
    k = torch.exp(-0.5 * (eu + ev))
    if k.sum() == 0:  # zero sigma along a rotated axis that misses every pixel centre
        k[size // 2, size // 2] = 1.0
    return (k / k.sum()).float()


def _check_kernel_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise RestoreKitError(f"kernel size must be an odd positive integer, got {size!r}")


def random_motion_kernel(
    size: int = 31,
    *,
    generator: torch.Generator,
    length_range: tuple[float, float] | None = None,
    shake_range: tuple[float, float] = (0.1, 0.6),
    jerks: float = 1.0,
    steps: int | None = None,
) -> torch.Tensor:
    """A random camera-shake PSF, ``size``×``size`` float32, non-negative, summing to 1.

    After Boracchi & Foi (2012; also DeblurGAN's generator): a 2-D path traced at constant speed whose
    direction keeps its inertia but diffuses under Gaussian jitter, is pulled back towards the start
    (centripetal term) and, at random instants, jerks back (impulsive shake). ``length_range`` is the
    path length in pixels (default ``(size/4, 1.5·size)``); ``shake_range`` the jitter in radians per
    √pixel of path (0 gives a straight line); ``jerks`` the mean number of jerks per kernel (each
    kernel's rate is uniform between 0 and twice that). Unlike the original, the jitter scales with the
    step, so the shape does not depend on ``steps`` (default: 4 per pixel of path). The path is
    rasterised with bilinear sub-pixel splatting, shrunk if it would not fit in the kernel, and centred
    on its centre of mass (so blurring does not shift the image) as far as it fits.
    """
    _check_generator(generator, "random_motion_kernel")
    _check_kernel_size(size)
    if size < 3:
        raise RestoreKitError(f"motion kernel size must be >= 3, got {size}")
    if length_range is None:
        length_range = (size / 4, 1.5 * size)
    len_lo, len_hi = _check_range(length_range, "length_range", lo=1.0)
    shake_lo, shake_hi = _check_range(shake_range, "shake_range", lo=0.0)
    if not math.isfinite(jerks) or jerks < 0:
        raise RestoreKitError(f"jerks must be >= 0, got {jerks}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 16):
        raise RestoreKitError(f"steps must be an integer >= 16, got {steps!r}")

    # Every random number is drawn up front so the walk itself is plain float arithmetic.
    head = _uniform(generator, 0.0, 1.0, 5).tolist()
    length = len_lo + (len_hi - len_lo) * head[0]
    steps = steps or max(32, math.ceil(4 * length) + 1)
    shake = shake_lo + (shake_hi - shake_lo) * head[1]
    centripetal = 0.7 * head[2] * 4.0 / length**2
    jerk_prob = 2.0 * jerks * head[3] / steps
    init_angle = 2 * math.pi * head[4]
    jitter = torch.randn(steps, 2, generator=generator, dtype=torch.float64).tolist()
    jerk_u = torch.rand(steps, 2, generator=generator, dtype=torch.float64).tolist()

    h = length / (steps - 1)
    noise = shake * math.sqrt(h)
    v = cmath.exp(1j * init_angle)
    pos = [0j] * steps
    for t in range(steps - 1):
        if jerk_u[t][0] < jerk_prob:
            v = v * cmath.exp(1j * (math.pi + jerk_u[t][1] - 0.5))
        v = v + noise * complex(*jitter[t]) - centripetal * h * pos[t]
        v = v / abs(v) if abs(v) > 0 else cmath.exp(1j * init_angle)
        pos[t + 1] = pos[t] + v * h

    pts = torch.tensor([[p.real, p.imag] for p in pos], dtype=torch.float64)
    # Bilinear splats reach one pixel past a point, so the path must span at most size - 2 pixels.
    room = size - 2
    extent = float((pts.amax(0) - pts.amin(0)).max())
    if extent > room:
        pts = pts * (room / extent)
    lo, hi = pts.amin(0), pts.amax(0)
    shift = (size - 1) / 2 - pts.mean(0)
    shift = torch.minimum(torch.maximum(shift, -lo), (size - 1 - 1e-6) - hi)
    k = _splat(pts + shift, torch.ones(steps, dtype=torch.float64), size, size)
    return (k / k.sum()).float()


# --- applying kernels ---------------------------------------------------------------------------------------

def apply_blur(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel with ``kernel`` (kh×kw, odd sizes; or N×kh×kw, one per image).

    Borders are reflect-padded (replicate where the image is smaller than the kernel's radius), so the
    output has the input's size. The kernel is used as given (not renormalised).
    """
    x, squeeze = _as_batch(img, "apply_blur")
    if not isinstance(kernel, torch.Tensor) or kernel.ndim not in (2, 3) or not kernel.is_floating_point():
        raise RestoreKitError("apply_blur: kernel must be a float tensor kh×kw or N×kh×kw, got "
                              f"{getattr(kernel, 'shape', type(kernel).__name__)}")
    kh, kw = kernel.shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise RestoreKitError(f"apply_blur: kernel sizes must be odd, got {kh}×{kw}")
    n, c, h, w = x.shape
    if kernel.ndim == 3 and kernel.shape[0] != n:
        raise RestoreKitError(f"apply_blur: {kernel.shape[0]} kernels for a batch of {n}")
    k = kernel.to(device=x.device, dtype=x.dtype).flip(-1, -2)  # conv2d correlates; PSFs convolve
    k = k.expand(n, kh, kw) if k.ndim == 2 else k
    weight = k.repeat_interleave(c, dim=0).unsqueeze(1)  # (N·C)×1×kh×kw: one filter per channel
    ph, pw = kh // 2, kw // 2
    mode = "reflect" if ph < h and pw < w else "replicate"
    padded = F.pad(x.reshape(1, n * c, h, w), (pw, pw, ph, ph), mode=mode)
    out = F.conv2d(padded, weight, groups=n * c).view(n, c, h, w)
    return _unbatch(out, squeeze)


def gaussian_blur(img: torch.Tensor, sigma: float, *, size: int | None = None) -> torch.Tensor:
    """Isotropic Gaussian blur with standard deviation ``sigma`` pixels (see ``gaussian_kernel``)."""
    return apply_blur(img, gaussian_kernel(sigma, size))


def random_gaussian_blur(img: torch.Tensor, *, generator: torch.Generator,
                         sigma_range: tuple[float, float] = (0.5, 3.0)) -> torch.Tensor:
    """Gaussian blur with σ drawn uniformly from ``sigma_range`` per image."""
    x, squeeze = _as_batch(img, "random_gaussian_blur")
    _check_generator(generator, "random_gaussian_blur")
    lo, hi = _check_range(sigma_range, "sigma_range", lo=0.0)
    sigmas = _uniform(generator, lo, hi, x.shape[0]).tolist()
    size = 2 * math.ceil(3 * hi) + 1
    kernels = torch.stack([gaussian_kernel(s, size) for s in sigmas])
    return _unbatch(apply_blur(x, kernels), squeeze)


def motion_blur(
    img: torch.Tensor,
    *,
    generator: torch.Generator,
    kernel_size: int = 31,
    length_range: tuple[float, float] | None = None,
    shake_range: tuple[float, float] = (0.1, 0.6),
    jerks: float = 1.0,
    return_kernel: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Blur each image with its own ``random_motion_kernel``; optionally also return the kernels
    (kh×kw for a C×H×W input, N×kh×kw for a batch)."""
    x, squeeze = _as_batch(img, "motion_blur")
    _check_generator(generator, "motion_blur")
    kernels = torch.stack([
        random_motion_kernel(kernel_size, generator=generator, length_range=length_range, shake_range=shake_range,
                             jerks=jerks)
        for _ in range(x.shape[0])
    ])
    out = _unbatch(apply_blur(x, kernels), squeeze)
    if return_kernel:
        return out, _unbatch(kernels, squeeze)
    return out
