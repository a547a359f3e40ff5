"""The Python API's one-call restoration: any image type in, the same type out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .errors import RestoreKitError


def restore(image: Any, model: str | nn.Module | None = None, *, weights: str | Path | None = None,
            tile: int | None = None, overlap: int | None = None, ensemble: bool = False,
            precision: str = "fp32", device: str = "auto", task: str | None = None) -> Any:
    """Restore a numpy array, PIL image, torch tensor or image file path with ``model``.

    ``model`` is a registered name (with ``weights``), a loaded ``nn.Module``, or None for the
    built-in default denoiser matching the image (gray or colour). The result has the input's type,
    size, dtype and device; alpha is kept.
    """
    from .inference import InferenceOptions, restore_tensor
    from .io import from_numpy_image, image_to_tensor, read_image, tensor_to_image, to_numpy_image

    if isinstance(image, (str, Path)):
        image = read_image(image)
    pixels, meta = to_numpy_image(image)
    net = _model_for(model, weights, pixels.shape[-1])
    pixels = match_channels(pixels, net.info.channels, allow_gray_to_rgb=True)
    options = InferenceOptions(tile=tile, overlap=overlap, ensemble=ensemble, precision=precision, device=device, task=task)
    out = restore_tensor(net, image_to_tensor(pixels), options)
    result = tensor_to_image(out)
    if meta.get("channels") == 1 and result.shape[-1] == 3:
        result = result.mean(axis=-1, keepdims=True)
    return from_numpy_image(result, meta)


_CACHE: dict[tuple[Any, ...], nn.Module] = {}


def _model_for(model: str | nn.Module | None, weights: str | Path | None, channels: int) -> nn.Module:
    from .pretrained import resolve_model

    if isinstance(model, nn.Module):
        return model.eval()
    key = (model, str(weights) if weights else None, channels if model is None and weights is None else None)
    if key not in _CACHE:
        _CACHE[key] = resolve_model(model, weights, channels=channels)
    return _CACHE[key]


def match_channels(pixels: Any, channels: int, *, allow_gray_to_rgb: bool = True, name: str = "image") -> Any:
    """Gray images run through colour models (replicated); colour images through gray models is an error."""
    have = pixels.shape[-1]
    if have == channels:
        return pixels
    if have == 1 and channels == 3 and allow_gray_to_rgb:
        return pixels.repeat(3, axis=-1)
    raise RestoreKitError(f"{name} has {have} channel(s) but the model takes {channels}; "
                          + ("use a colour model" if have == 3 else "use a gray model"))
