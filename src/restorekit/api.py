"""The Python API's one-call restoration: any image type in, the same type out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn



def restore(image: Any, model: str | nn.Module | None = None, *, weights: str | Path | None = None,
            tile: int | None = None, overlap: int | None = None, ensemble: bool = False,
            precision: str = "fp32", device: str = "auto", task: str | None = None) -> Any:
    """Restore a numpy array, PIL image, torch tensor or image file path with ``model``.

    ``model`` is a registered name (with ``weights``), a loaded ``nn.Module``, or None for the
    built-in default denoiser matching the image (gray or colour). The result has the input's type,
    size, dtype and device; alpha is kept.
    """
    from .inference import InferenceOptions, restore_pixels
    from .io import from_numpy_image, read_image, to_numpy_image

    if isinstance(image, (str, Path)):
        image = read_image(image)
    pixels, meta = to_numpy_image(image)
    net = _model_for(model, weights, pixels.shape[-1])
    options = InferenceOptions(tile=tile, overlap=overlap, ensemble=ensemble, precision=precision, device=device, task=task)
    return from_numpy_image(restore_pixels(net, pixels, options), meta)


_CACHE: dict[tuple[Any, ...], nn.Module] = {}


def _model_for(model: str | nn.Module | None, weights: str | Path | None, channels: int) -> nn.Module:
    from .pretrained import resolve_model

    if isinstance(model, nn.Module):
        return model.eval()
    key = (model, str(weights) if weights else None, channels if model is None and weights is None else None)
    if key not in _CACHE:
        _CACHE[key] = resolve_model(model, weights, channels=channels)
    return _CACHE[key]
