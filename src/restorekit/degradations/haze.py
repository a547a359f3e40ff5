"""Haze by the atmospheric scattering model (Koschmieder; as in RESIDE): ``I = J·t + A·(1 − t)``, ``t = exp(−β·d)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import RestoreKitError
from .blur import _as_batch, _check_generator, _check_range, _uniform, _unbatch


def depth_proxy(img: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """A plausible relative depth in [0, 1] (1 = far) for images without a depth map: N×1×H×W (1×H×W).

    Mix of three cues, each normalised to [0, 1], and the mix normalised again: a vertical gradient
    (weight 1; outdoor scenes usually get farther towards the top), a smooth random field (weight
    U(0.2, 0.6); bicubically up-sampled 4×4–8×8 noise, so depth varies slowly across the scene) and the
    blurred luminance (weight U(0.1, 0.4); bright flat regions such as sky tend to be far, the intuition
    of the dark channel prior). The luminance is averaged over 7×7 pixels.
    """
    x, squeeze = _as_batch(img, "depth_proxy")
    _check_generator(generator, "depth_proxy")
    n, c, h, w = x.shape
    lum = x.float().mean(1, keepdim=True).cpu()
    lum = F.avg_pool2d(F.pad(lum, (3, 3, 3, 3), mode="replicate"), 7, stride=1)
    ramp = torch.linspace(1.0, 0.0, h).view(1, 1, h, 1).expand(n, 1, h, w)
    depths = []
    for i in range(n):
        cells = int(torch.randint(4, 9, (1,), generator=generator))
        coarse = torch.rand(1, 1, cells, cells, generator=generator)
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
        wts = torch.tensor([1.0, 0.2, 0.1]) + torch.rand(3, generator=generator) * torch.tensor([0.0, 0.4, 0.3])
        d = wts[0] * ramp[i:i + 1] + wts[1] * _normalise(field) + wts[2] * _normalise(lum[i:i + 1])
        depths.append(_normalise(d))
    return _unbatch(torch.cat(depths).to(device=x.device, dtype=x.dtype), squeeze)


def _normalise(d: torch.Tensor) -> torch.Tensor:
    lo, hi = d.min(), d.max()
    return (d - lo) / (hi - lo) if hi > lo else torch.zeros_like(d)


def haze(
    img: torch.Tensor,
    *,
    generator: torch.Generator,
    beta_range: tuple[float, float] = (0.6, 1.8),
    airlight_range: tuple[float, float] = (0.7, 1.0),
    depth: torch.Tensor | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hazy image ``J·t + A·(1 − t)`` with β and a grey airlight A drawn uniformly per image.

    ``depth`` is H×W, 1×H×W or N×1×H×W, non-negative, in the units β is per (RESIDE's ranges assume
    depth scaled to about [0, 1]); without it ``depth_proxy`` is used. β = 0 leaves the image as is.
    With ``return_params`` also returns the transmission ``t`` (N×1×H×W, or 1×H×W) and ``A`` (N×1×1×1,
    or 1×1×1).
    """
    x, squeeze = _as_batch(img, "haze")
    _check_generator(generator, "haze")
    b_lo, b_hi = _check_range(beta_range, "beta_range", lo=0.0)
    a_lo, a_hi = _check_range(airlight_range, "airlight_range", lo=0.0, hi=1.0)
    n, _, h, w = x.shape
    beta = _uniform(generator, b_lo, b_hi, n)
    airlight = _uniform(generator, a_lo, a_hi, n)
    if depth is None:
        d = depth_proxy(x, generator=generator)
    else:
        d = _check_depth(depth, n, h, w).to(device=x.device, dtype=x.dtype)
    t = torch.exp(-beta.to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1) * d)
    a = airlight.to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)
    out = x * t + a * (1 - t)
    if return_params:
        return _unbatch(out, squeeze), _unbatch(t, squeeze), _unbatch(a, squeeze)
    return _unbatch(out, squeeze)


def _check_depth(depth: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    if not isinstance(depth, torch.Tensor) or not depth.is_floating_point():
        raise RestoreKitError("haze: depth must be a float tensor")
    d = depth
    while d.ndim < 4:
        d = d.unsqueeze(0)
    if d.ndim != 4 or d.shape[1] != 1 or d.shape[-2:] != (h, w) or d.shape[0] not in (1, n):
        raise RestoreKitError(f"haze: depth of shape {tuple(depth.shape)} does not fit images of "
                              f"{n}×C×{h}×{w} (want H×W, 1×H×W or N×1×H×W)")
    if not torch.isfinite(d).all() or (d < 0).any():
        raise RestoreKitError("haze: depth must be finite and >= 0")
    return d.expand(n, 1, h, w)
