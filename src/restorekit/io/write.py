"""Writing images: float pixels quantised to 8 or 16 bits and encoded into a file written atomically.

Pillow encodes 8-bit images, ``imagecodecs`` (libpng) 16-bit PNGs and ``tifffile`` TIFFs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import RestoreKitError
from .arrays import (
    Image,
    _float_alpha,
    _float_pixels,
    _pil_from_samples,
    _quantize,
    resize_alpha,
    to_numpy_image,
)
from .files import atomic_write

__all__ = ["WRITE_EXTENSIONS", "write_image"]

_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
WRITE_EXTENSIONS = frozenset(_WRITE_FORMATS)
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
_ALPHA_FORMATS = frozenset({"PNG", "TIFF"})
_PNG_LEVEL = 6  # zlib's default, for 8- and 16-bit PNGs alike


def write_image(
    path: str | os.PathLike[str],
    pixels_or_image: Any,
    *,
    alpha: np.ndarray | None = None,
    bit_depth: int | None = None,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write an image atomically; returns the path.

    ``pixels_or_image`` is an :class:`Image` or anything :func:`to_numpy_image` accepts (float arrays are
    clipped to [0, 1]). ``bit_depth`` is 8 or 16; None keeps the Image's, else 8 (16 for uint16 input). An
    ``alpha`` of another size than the pixels (after upscaling) is resized to fit.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        valid = ", ".join(sorted(_WRITE_FORMATS))
        raise RestoreKitError(f"{path}: cannot write '{path.suffix}' files; use one of {valid}")
    if bit_depth not in (None, 8, 16):
        raise RestoreKitError(f"{path}: bit depth must be 8 or 16, not {bit_depth!r}")
    if not (isinstance(quality, int) and 1 <= quality <= 100):
        raise RestoreKitError(f"{path}: JPEG quality must be an integer from 1 to 100, not {quality!r}")

    if isinstance(pixels_or_image, Image):
        pixels = _float_pixels(pixels_or_image.pixels)
        own_alpha, default_depth = pixels_or_image.alpha, pixels_or_image.bit_depth
        if pixels.shape[2] in (2, 4):
            pixels, own_alpha = pixels[..., :-1], pixels[..., -1]
    else:
        pixels, meta = to_numpy_image(pixels_or_image)
        own_alpha, default_depth = meta["alpha"], meta["bit_depth"]
        if own_alpha is not None and alpha is not None:
            raise RestoreKitError(f"{path}: the pixels already carry an alpha channel and alpha= was given too")
    if pixels.shape[2] not in (1, 3) or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise RestoreKitError(f"{path}: cannot write pixels of shape {pixels.shape}; expected H×W×1 or H×W×3")
    alpha = own_alpha if alpha is None else _float_alpha(alpha)
    if alpha is not None:
        alpha = resize_alpha(alpha, pixels.shape[0], pixels.shape[1])
    depth = bit_depth if bit_depth is not None else (default_depth if default_depth in (8, 16) else 8)

    if depth == 16 and fmt not in _SIXTEEN_BIT_FORMATS:
        warnings.warn(f"{path}: {fmt} stores 8 bits per channel; writing 8-bit", stacklevel=2)
        depth = 8
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        warnings.warn(f"{path}: {fmt} cannot store transparency; the alpha channel is dropped", stacklevel=2)
        alpha = None
    samples = _quantize(pixels, depth)
    if alpha is not None:
        samples = np.concatenate([samples, _quantize(alpha[:, :, None], depth)], axis=2)

    def encode(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a named file object: tifffile wants one
            _ENCODERS[fmt](f, samples, quality)

    return atomic_write(path, encode, overwrite=overwrite)


def _save_png(f: BinaryIO, samples: np.ndarray, quality: int) -> None:
    if samples.dtype == np.uint16:
        import imagecodecs

        f.write(imagecodecs.png_encode(np.ascontiguousarray(samples), level=_PNG_LEVEL))
    else:
        _pil_from_samples(samples).save(f, format="PNG", compress_level=_PNG_LEVEL)


def _save_jpeg(f: BinaryIO, samples: np.ndarray, quality: int) -> None:
    # 4:4:4 at high quality: chroma subsampling would blur the colour detail a restoration just produced
    _pil_from_samples(samples).save(f, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)


def _save_bmp(f: BinaryIO, samples: np.ndarray, quality: int) -> None:
    _pil_from_samples(samples).save(f, format="BMP")


def _save_tiff(f: BinaryIO, samples: np.ndarray, quality: int) -> None:
    import tifffile

    channels = samples.shape[2]
    tifffile.imwrite(
        f,
        samples[:, :, 0] if channels == 1 else samples,
        photometric="rgb" if channels >= 3 else "minisblack",
        planarconfig="contig" if channels > 1 else None,
        extrasamples=["unassalpha"] if channels in (2, 4) else None,
        compression="zlib",
        predictor=True,
        metadata=None,
    )


_ENCODERS: dict[str, Callable[[BinaryIO, np.ndarray, int], None]] = {
    "PNG": _save_png,
    "JPEG": _save_jpeg,
    "BMP": _save_bmp,
    "TIFF": _save_tiff,
}
