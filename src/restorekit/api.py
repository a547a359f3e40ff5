"""The Python API's one-call restoration: any image type in, the same type out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .errors import RestoreKitError


def restore(image: Any, model: str | nn.Module | None = None, *, weights: str | Path | None = None,
            tile: int | None = None, overlap: int | None = None, ensemble: bool = False,
            precision: str = "fp32", device: str = "auto", task: str | None = None, color: str = "y") -> Any:
    """Restore a numpy array, PIL image, torch tensor or image file path with ``model``.

    ``model`` is a registered name (with ``weights``), a loaded ``nn.Module``, or None for the
    built-in default denoiser matching the image (gray or colour). The result has the input's type,
    size (times the scale of a super-resolution ``task``), dtype and device; alpha is kept. A gray
    model restores a colour image's luminance (``color="y"``, chroma kept) or each of its channels
    (``color="per-channel"``).
    """
    from .inference import InferenceOptions, restore_pixels
    from .io import from_numpy_image, read_image, to_numpy_image

    if isinstance(image, (str, Path)):
        image = read_image(image)
    pixels, meta = to_numpy_image(image)
    net = _model_for(model, weights, pixels.shape[-1])
    options = InferenceOptions(tile=tile, overlap=overlap, ensemble=ensemble, precision=precision, device=device, task=task,
                               color=color)
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


def load(weights: str | Path, model: str | None = None, *, map_location: str = "cpu") -> nn.Module:
    """A model with weights, from anything ``--weights`` takes: a restorekit checkpoint, an official
    ``.mat``/``.pth``/``.pkl`` file (converted in memory), a built-in name (``"default-gray"``) or a
    downloaded release's name. ``model`` names the architecture where the file does not say it."""
    from .pretrained import load_weights

    return load_weights(weights, model).to(map_location)


def create_model(name: str, *, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Registered variant ``name`` (architecture only, as :func:`restorekit.models.create_model`), or with
    ``pretrained=True`` its built-in weights; a variant without them is an error saying where its
    official weights come from."""
    if not pretrained:
        from .models import create_model as build

        return build(name, **kwargs)
    if kwargs:
        raise RestoreKitError(f"pretrained=True builds {name!r} as its weights were trained; drop {', '.join(kwargs)}")
    from .pretrained import pretrained_model

    return pretrained_model(name)
