"""Rain: streak layers (the Rain100L/H-style synthesis) and raindrops on the lens or window (as in Qian et al.'s
attentive-GAN data: refracting, out-of-focus drops)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import RestoreKitError
from .blur import _as_batch, _check_generator, _check_range, _uniform, _unbatch, gaussian_blur


def streak_kernel(length: float, angle: float, width: float = 1.0) -> torch.Tensor:
    """An odd-sized, anti-aliased line of ``length`` pixels, ``angle`` degrees from vertical (positive
    leans its top to the right), with a Gaussian cross-section of σ ≈ width/2, tapered at both ends, peak 1."""
    if not (math.isfinite(length) and length >= 1):
        raise RestoreKitError(f"streak length must be >= 1 pixel, got {length}")
    if not (math.isfinite(width) and width > 0):
        raise RestoreKitError(f"streak width must be > 0, got {width}")
    sigma = math.sqrt((width / 2) ** 2 + 1 / 12)  # plus a pixel's footprint, so thin streaks do not alias
    size = 2 * math.ceil(length / 2 + 2 * sigma + 1) + 1
    r = torch.arange(size, dtype=torch.float32) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    a = math.radians(angle)
    along = xx * math.sin(a) - yy * math.cos(a)  # image y points down, so "up" is -y
    across = xx * math.cos(a) + yy * math.sin(a)
    half = length / 2
    beyond = (along.abs() - half).clamp_min(0)  # round caps: distance past the segment's ends
    # Tapered ends, like a drop's motion trail; the taper's support reaches the caps so short streaks show.
    taper = (1 - (along.abs() / (half + sigma)).clamp(max=1) ** 3)
    k = taper * torch.exp(-(across**2 + beyond**2) / (2 * sigma**2))
    return k / k.max()


def rain_streaks(
    img: torch.Tensor,
    *,
    generator: torch.Generator,
    density_range: tuple[float, float] = (0.002, 0.01),
    length_range: tuple[float, float] = (8.0, 30.0),
    angle_range: tuple[float, float] = (-25.0, 25.0),
    width: float = 1.0,
    intensity_range: tuple[float, float] = (0.5, 0.9),
    layers: tuple[int, int] = (1, 3),
    angle_jitter: float = 4.0,
    return_mask: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Add rain streaks: per image a random number of ``layers`` (inclusive range), each with its own
    density (fraction of pixels starting a streak), length (pixels), brightness and angle (one angle per
    image from ``angle_range``, degrees from vertical, plus ±``angle_jitter`` per layer, since rain in
    one scene falls nearly parallel). Sparse seeds are smeared with an oriented line kernel; the layers
    are summed, clipped to [0, 1] and screen-blended, ``1 − (1 − J)(1 − R)``. The optional mask is the
    streak layer R (N×1×H×W, or 1×H×W), non-zero exactly where rain was added.
    """
    x, squeeze = _as_batch(img, "rain_streaks")
    _check_generator(generator, "rain_streaks")
    d_lo, d_hi = _check_range(density_range, "density_range", lo=0.0, hi=1.0)
    l_lo, l_hi = _check_range(length_range, "length_range", lo=1.0)
    a_lo, a_hi = _check_range(angle_range, "angle_range", lo=-90.0, hi=90.0)
    i_lo, i_hi = _check_range(intensity_range, "intensity_range", lo=0.0, hi=1.0)
    n_lo, n_hi = _check_int_range(layers, "layers", lo=1)
    if not (math.isfinite(width) and width > 0):
        raise RestoreKitError(f"rain_streaks: width must be > 0 pixels, got {width}")
    if not (math.isfinite(angle_jitter) and angle_jitter >= 0):
        raise RestoreKitError(f"rain_streaks: angle_jitter must be >= 0, got {angle_jitter}")

    n, _, h, w = x.shape
    masks = []
    for _ in range(n):
        count = int(torch.randint(n_lo, n_hi + 1, (1,), generator=generator))
        base_angle = float(_uniform(generator, a_lo, a_hi))
        rain = torch.zeros(h, w)
        for _ in range(count):
            density, length, brightness, jitter = _uniform(generator, 0.0, 1.0, 4).tolist()
            k = streak_kernel(l_lo + (l_hi - l_lo) * length,
                              base_angle + angle_jitter * (2 * jitter - 1), width)
            r = k.shape[-1] // 2
            # Seeds on a canvas larger by the kernel's radius, so streaks also enter from outside the frame.
            u = torch.rand(h + 2 * r, w + 2 * r, generator=generator)
            level = i_lo + (i_hi - i_lo) * brightness
            strength = level * (0.5 + 0.5 * torch.rand(u.shape, generator=generator))
            seeds = u < d_lo + (d_hi - d_lo) * density
            _stamp(rain, k, seeds, strength, r)
        masks.append(rain.clamp(0, 1).view(1, 1, h, w))
    mask = torch.cat(masks).to(device=x.device, dtype=x.dtype)
    out = 1 - (1 - x.clamp(0, 1)) * (1 - mask)
    if return_mask:
        return _unbatch(out, squeeze), _unbatch(mask, squeeze)
    return _unbatch(out, squeeze)


def raindrops(
    img: torch.Tensor,
    *,
    generator: torch.Generator,
    count_range: tuple[int, int] = (5, 20),
    radius_range: tuple[float, float] = (0.02, 0.07),
    elongation_range: tuple[float, float] = (1.0, 1.4),
    zoom_range: tuple[float, float] = (1.5, 3.0),
    defocus: float = 0.15,
    return_mask: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Add raindrops: rounded, slightly elongated (taller by ``elongation``, wider at the bottom) blobs
    that show the background refracted through a lens: inverted and minified ``zoom`` times around the
    drop (the drop sees a wider patch of the scene), blurred by σ = ``defocus``·radius, with a darker
    rim, a small highlight and soft edges. ``count_range`` is the inclusive range of drops per image,
    ``radius_range`` the drop radius as a fraction of the shorter image side. The optional mask is the
    drops' alpha (N×1×H×W, or 1×H×W), non-zero exactly where drops were drawn.
    """
    x, squeeze = _as_batch(img, "raindrops")
    _check_generator(generator, "raindrops")
    c_lo, c_hi = _check_int_range(count_range, "count_range", lo=0)
    r_lo, r_hi = _check_range(radius_range, "radius_range", lo=0.0, hi=0.5)
    if r_lo <= 0:
        raise RestoreKitError("raindrops: radius_range is a fraction of the shorter image side and must be > 0 "
                              f"(for example (0.02, 0.07)), got {radius_range!r}")
    e_lo, e_hi = _check_range(elongation_range, "elongation_range", lo=1.0, hi=3.0)
    z_lo, z_hi = _check_range(zoom_range, "zoom_range", lo=0.0)
    if not (math.isfinite(defocus) and defocus >= 0):
        raise RestoreKitError(f"raindrops: defocus must be >= 0, got {defocus}")
    n, c, h, w = x.shape
    if min(h, w) < 4:
        raise RestoreKitError(f"raindrops: image of {h}×{w} is too small (needs at least 4×4)")

    src = x.detach().float().cpu().clamp(0, 1)
    outs, masks = [], []
    for i in range(n):
        count = int(torch.randint(c_lo, c_hi + 1, (1,), generator=generator))
        params = _uniform(generator, 0.0, 1.0, 6 * count).view(count, 6).tolist()
        radii = [max(1.5, (r_lo + (r_hi - r_lo) * p[2]) * min(h, w)) for p in params]
        sigma = defocus * (sum(radii) / len(radii)) if radii else 0.0
        background = gaussian_blur(src[i], sigma) if sigma > 0.3 else src[i]
        out, keep = src[i].clone(), torch.ones(1, h, w)
        for p, radius in zip(params, radii):
            _drop(out, keep, background, cx=p[0] * (w - 1), cy=p[1] * (h - 1), radius=radius,
                  elongation=e_lo + (e_hi - e_lo) * p[3], tilt=math.radians(30 * (p[4] - 0.5)),
                  zoom=z_lo + (z_hi - z_lo) * p[5])
        outs.append(out)
        masks.append(1 - keep)
    out = torch.stack(outs).to(device=x.device, dtype=x.dtype)
    mask = torch.stack(masks).to(device=x.device, dtype=x.dtype)
    if return_mask:
        return _unbatch(out, squeeze), _unbatch(mask, squeeze)
    return _unbatch(out, squeeze)


def _stamp(canvas: torch.Tensor, kernel: torch.Tensor, seeds: torch.Tensor, strength: torch.Tensor,
           r: int) -> None:
    """Add ``kernel`` scaled by ``strength`` at every seed of a canvas padded by ``r`` into ``canvas`` (H×W).

    Seeds are sparse, so stamping is much cheaper than a dense convolution with a large kernel.
    """
    h, w = canvas.shape
    sy, sx = torch.nonzero(seeds, as_tuple=True)
    ky, kx = torch.nonzero(kernel > 1e-3, as_tuple=True)
    ty = (sy[:, None] + ky[None] - 2 * r).flatten()
    tx = (sx[:, None] + kx[None] - 2 * r).flatten()
    vals = (strength[sy, sx][:, None] * kernel[ky, kx][None]).flatten()
    ok = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
    canvas.view(-1).index_add_(0, ty[ok] * w + tx[ok], vals[ok])


def _drop(out: torch.Tensor, keep: torch.Tensor, background: torch.Tensor, *, cx: float, cy: float,
          radius: float, elongation: float, tilt: float, zoom: float) -> None:
    """Composite one drop over ``out`` (C×H×W, in place) and multiply its transparency into ``keep``."""
    _, h, w = out.shape
    reach = radius * elongation * 1.3 + 2
    x0, x1 = max(0, math.floor(cx - reach)), min(w, math.ceil(cx + reach) + 1)
    y0, y1 = max(0, math.floor(cy - reach)), min(h, math.ceil(cy + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float32), torch.arange(x0, x1, dtype=torch.float32),
                            indexing="ij")
    dx, dy = xs - cx, ys - cy
    cos, sin = math.cos(tilt), math.sin(tilt)
    un = (cos * dx + sin * dy) / radius
    vn = (-sin * dx + cos * dy) / (radius * elongation)
    un = un / (1 + 0.2 * vn.clamp(-1, 1))  # wider at the bottom, where the water collects
    rho = torch.sqrt(un**2 + vn**2)
    edge = ((1 - rho) / 0.25).clamp(0, 1)
    alpha = edge * edge * (3 - 2 * edge)  # smoothstep: soft, out-of-focus boundary
    if not bool((alpha > 0).any()):
        return
    # A water lens shows the scene inverted and minified; the barrel term bends it more near the rim.
    bend = zoom * (1 + 0.3 * rho**2)
    sx, sy = cx - bend * dx, cy - bend * dy
    grid = torch.stack([2 * sx / (w - 1) - 1, 2 * sy / (h - 1) - 1], dim=-1)[None]
    seen = F.grid_sample(background[None], grid, mode="bilinear", padding_mode="reflection",
                         align_corners=True)[0]
    rim = torch.exp(-(((rho - 0.85) / 0.15) ** 2))
    highlight = 0.5 * torch.exp(-((un + 0.35) ** 2 + (vn + 0.4) ** 2) / 0.02)
    content = (seen * (1.05 - 0.35 * rim) + highlight).clamp(0, 1)
    region = out[:, y0:y1, x0:x1]
    region.mul_(1 - alpha).add_(content * alpha)
    keep[:, y0:y1, x0:x1].mul_(1 - alpha)


def _check_int_range(rng: tuple[int, int], what: str, *, lo: int) -> tuple[int, int]:
    try:
        a, b = rng
    except (TypeError, ValueError):
        raise RestoreKitError(f"{what} must be a pair (low, high) of integers, got {rng!r}") from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (a, b)) or a > b or a < lo:
        raise RestoreKitError(f"{what} must be integers (low, high) with {lo} <= low <= high, got {rng!r}")
    return a, b
