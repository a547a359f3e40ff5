"""Degradations by name, for training configs: every entry is ``fn(img, *, generator, **params) -> Tensor``."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Callable

import torch

from ..errors import RestoreKitError
from ..registry import Registry, did_you_mean
from .blur import _as_batch, _check_generator, _check_range, _uniform, motion_blur, random_gaussian_blur
from .haze import haze
from .jpeg import jpeg_compress
from .noise import add_gaussian_noise, round_to_8bit
from .rain import rain_streaks, raindrops
from .sr import bicubic_downsample

Degradation = Callable[..., torch.Tensor]


def gaussian_noise(
    img: torch.Tensor,
    *,
    generator: torch.Generator,
    sigma: float | None = None,
    sigma_range: tuple[float, float] | None = None,
    sigma_choices: Sequence[float] | None = None,
    clip: bool = False,
    eight_bit: float = 0.0,
) -> torch.Tensor:
    """AWGN with σ (0–255 scale) fixed, drawn uniformly from ``sigma_range`` per image (blind training,
    DnCNN-B's (0, 55)) or picked per image from ``sigma_choices`` (DuRN's [30, 50, 70]). Give at most
    one; the default is ``sigma_range=(0, 55)``. ``eight_bit`` is the fraction of images whose noisy
    version is then rounded and clipped to 8 bits, as a noisy photo saved to PNG or JPEG is."""
    x, squeeze = _as_batch(img, "gaussian-noise")
    _check_generator(generator, "gaussian-noise")
    given = [p for p in (sigma, sigma_range, sigma_choices) if p is not None]
    if len(given) > 1:
        raise RestoreKitError("gaussian-noise: give only one of sigma, sigma_range and sigma_choices")
    n = x.shape[0]
    if sigma is not None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma >= 0:
            raise RestoreKitError(f"gaussian-noise: sigma must be a number >= 0 (0–255 scale), got {sigma!r}")
        sigmas = torch.full((n,), float(sigma))
    elif sigma_choices is not None:
        choices = torch.as_tensor(list(sigma_choices), dtype=torch.float32)
        if choices.ndim != 1 or choices.numel() == 0:
            raise RestoreKitError(f"gaussian-noise: sigma_choices must be a non-empty list, got {sigma_choices!r}")
        sigmas = choices[torch.randint(0, choices.numel(), (n,), generator=generator)]
    else:
        lo, hi = _check_range(sigma_range if sigma_range is not None else (0.0, 55.0), "sigma_range", lo=0.0)
        sigmas = _uniform(generator, lo, hi, n).float()
    if isinstance(eight_bit, bool) or not isinstance(eight_bit, (int, float)) or not 0 <= eight_bit <= 1:
        raise RestoreKitError(f"gaussian-noise: eight_bit must be a fraction in [0, 1], got {eight_bit!r}")
    out = add_gaussian_noise(x, sigmas, generator=generator, clip=clip)
    if eight_bit > 0:
        pick = (torch.rand(n, generator=generator) < eight_bit).view(-1, *([1] * (x.ndim - 1))).to(out.device)
        out = torch.where(pick, round_to_8bit(out), out)
    return out.squeeze(0) if squeeze else out


def jpeg(img: torch.Tensor, *, generator: torch.Generator, quality: int | None = None,
         quality_range: tuple[int, int] = (10, 90)) -> torch.Tensor:
    """JPEG at a fixed ``quality`` or one drawn uniformly (integers, inclusive) from ``quality_range`` per image."""
    x, squeeze = _as_batch(img, "jpeg")
    _check_generator(generator, "jpeg")
    if quality is not None:
        out = jpeg_compress(x, quality)
    else:
        lo, hi = quality_range
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (lo, hi)) or not 1 <= lo <= hi <= 100:
            raise RestoreKitError(f"jpeg: quality_range must be integers with 1 <= low <= high <= 100, "
                                  f"got {quality_range!r}")
        out = jpeg_compress(x, torch.randint(lo, hi + 1, (x.shape[0],), generator=generator).tolist())
    return out.squeeze(0) if squeeze else out


def bicubic_down(img: torch.Tensor, *, generator: torch.Generator, factor: int = 4) -> torch.Tensor:
    """MATLAB-bicubic down-scaling by ``factor`` (deterministic; the output is smaller)."""
    return bicubic_downsample(img, factor)


DEGRADATIONS: Registry[Degradation] = Registry("degradation", {
    "gaussian-noise": gaussian_noise,
    "gaussian-blur": random_gaussian_blur,
    "motion-blur": motion_blur,
    "haze": haze,
    "rain-streaks": rain_streaks,
    "raindrops": raindrops,
    "jpeg": jpeg,
    "bicubic-down": bicubic_down,
})


def get_degradation(name: str) -> Degradation:
    """The degradation called ``name``; an unknown name raises with the nearest valid one."""
    return DEGRADATIONS.get(name)


def degrade(name: str, img: torch.Tensor, generator: torch.Generator, **params: Any) -> torch.Tensor:
    """Apply the degradation ``name`` with ``params`` (checked against its signature) and return the image."""
    fn = get_degradation(name)
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("img", "generator")
                and not p.startswith("return_")]
    for key in params:
        if key not in accepted:
            raise RestoreKitError(f"degradation {name!r} has no parameter {key!r}{did_you_mean(key, accepted)} "
                                  f"(parameters: {', '.join(accepted)})")
    return fn(img, generator=generator, **params)
