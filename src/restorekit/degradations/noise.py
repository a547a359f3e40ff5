"""Additive white Gaussian noise, with σ on the 0–255 scale as the denoising papers state it."""

from __future__ import annotations

import hashlib

import torch

from ..errors import RestoreKitError


def round_to_8bit(x: torch.Tensor) -> torch.Tensor:
    """``x`` clipped to [0, 1] and rounded to 8 bits, as a saved PNG or JPEG source would be."""
    return (x.clamp(0, 1) * 255).round() / 255


def seed_for(name: str, seed: int = 0) -> int:
    """A stable 63-bit seed from an image's name and a base seed: the same image always gets the same
    noise, whatever order files are read in (Python's ``hash`` is salted per process, so not that)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator_for(name: str, seed: int = 0) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(seed_for(name, seed))
    return gen


def add_gaussian_noise(
    clean: torch.Tensor,
    sigma: float | torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    data_range: float = 1.0,
    clip: bool = False,
) -> torch.Tensor:
    """``clean + σ/255·data_range·N(0, 1)``; ``sigma`` may be a tensor of one σ per image of the batch.

    The noise is drawn on the CPU with ``generator`` and moved to the tensor's device, so a seeded
    result is the same on every device.
    """
    sig = torch.as_tensor(sigma, dtype=torch.float32)
    if torch.any(sig < 0):
        raise RestoreKitError(f"noise level must be >= 0, got {sigma}")
    noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32)
    if sig.ndim == 1:
        if sig.numel() != clean.shape[0]:
            raise RestoreKitError(f"{sig.numel()} noise levels for a batch of {clean.shape[0]}")
        sig = sig.view(-1, *([1] * (clean.ndim - 1)))
    noisy = clean + (noise * sig / 255.0 * data_range).to(device=clean.device, dtype=clean.dtype)
    return noisy.clamp(0, data_range) if clip else noisy


def add_named_gaussian_noise(clean: torch.Tensor, sigma: float, name: str, *, seed: int = 0, clip: bool = False,
                             data_range: float = 1.0) -> torch.Tensor:
    """Noise seeded by the image's name: reproducible and independent of file order."""
    return add_gaussian_noise(clean, sigma, generator=generator_for(name, seed), clip=clip, data_range=data_range)
