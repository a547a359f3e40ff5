"""Reading images: decoding to float32 H×W×C pixels, pixel limits checked from the header, listing files.

Pillow decodes 8-bit images. Pillow cannot hold 16-bit colour, so 16-bit PNGs go through ``imagecodecs``
(libpng) and 16-bit TIFFs through ``tifffile``.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import io as stdio
import logging
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from ..errors import RestoreKitError
from .arrays import _REFUSED_MODES, _SUPPORTED_KINDS, Image, _pil_samples, _to_float

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "current_pixel_limit", "list_images", "pixel_limit", "read_image"]

DEFAULT_MAX_PIXELS = 400_000_000

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})

# Exceptions Pillow, zlib, tifffile and imagecodecs raise for broken or truncated data (fuzzing finds them all:
# a corrupt TIFF directory gives TypeError/KeyError from Pillow, IndexError from tifffile; each imagecodecs
# codec, also the ones tifffile calls, has its own RuntimeError subclass).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, LookupError, TypeError,
                  RuntimeError)
_TIFF_SAMPLE_FORMATS = {1: "unsigned integer", 2: "signed integer", 3: "floating-point", 5: "complex integer",
                        6: "complex floating-point"}
_PNG_SIG = b"\x89PNG\r\n\x1a\n"

# The limit read_image applies when the caller gives none: DEFAULT_MAX_PIXELS, or pixel_limit()'s.
_MAX_PIXELS: contextvars.ContextVar[int | None] = contextvars.ContextVar("restorekit_max_pixels",
                                                                         default=DEFAULT_MAX_PIXELS)
_CONFIGURED: Any = object()


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Within the block (this thread/context), read_image calls that give no ``max_pixels`` use this one
    (None: no limit). For code that reads images deep inside, such as evaluation."""
    if max_pixels is not None and (not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1):
        raise RestoreKitError(f"max_pixels must be a positive integer or None (no limit), not {max_pixels!r}")
    token = _MAX_PIXELS.set(max_pixels)
    try:
        yield
    finally:
        _MAX_PIXELS.reset(token)


def current_pixel_limit() -> int | None:
    """The limit read_image applies when given no ``max_pixels`` (see :func:`pixel_limit`)."""
    return _MAX_PIXELS.get()


class _QuietWhileReading(logging.Filter):
    """tifffile logs a warning per broken tag of a corrupt file, imagecodecs one per libpng warning;
    read_image reports the file in one line."""

    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "depth", 0)


_QUIET = _QuietWhileReading()


@contextlib.contextmanager
def _quiet_codecs() -> Iterator[None]:
    for name in ("tifffile", "imagecodecs"):
        logging.getLogger(name).addFilter(_QUIET)  # once: addFilter skips a filter already there
    _QUIET.active.depth = getattr(_QUIET.active, "depth", 0) + 1
    try:
        yield
    finally:
        _QUIET.active.depth -= 1


def read_image(
    path: str | os.PathLike[str],
    *,
    channels: int | None = None,
    max_pixels: int | None = _CONFIGURED,
) -> Image:
    """Read an image file; ``channels`` 1 or 3 converts, ``max_pixels`` (None: no limit) refuses huge ones
    from their header, before decoding. Without ``max_pixels``: :func:`pixel_limit`'s, else DEFAULT_MAX_PIXELS."""
    if channels not in (None, 1, 3):
        raise RestoreKitError(f"channels must be 1, 3 or None, not {channels!r}")
    if max_pixels is _CONFIGURED:
        max_pixels = _MAX_PIXELS.get()
    path = Path(path)
    head = _open_head(path)

    decoded: _Decoded | None = None
    if head.startswith(_PNG_SIG):
        width, height, bit_depth = _png_header(path, head)
        _check_size(path, width, height, max_pixels)
        if bit_depth == 16:
            with _quiet_codecs():
                decoded = _read_png16(path)
    elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        with _quiet_codecs():
            decoded = _read_tiff(path, max_pixels)
    if decoded is None:
        decoded = _read_pillow(path, max_pixels)

    if decoded.frames > 1:
        warnings.warn(f"{path}: has {decoded.frames} frames; using the first", stacklevel=2)

    samples = _apply_orientation(decoded.samples, decoded.orientation)
    pixels = _to_float(samples)
    alpha = None
    if pixels.shape[2] in (2, 4):
        pixels, alpha = pixels[..., :-1], pixels[..., -1]
        if decoded.premultiplied:
            pixels = _unpremultiply(pixels, alpha)
    elif decoded.transparent is not None:
        alpha = np.any(samples != decoded.transparent, axis=2).astype(np.float32)
    pixels = _convert_channels(np.ascontiguousarray(pixels), channels)
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha)
    return Image(pixels=pixels, alpha=alpha, bit_depth=decoded.bit_depth, path=path)


@dataclass
class _Decoded:
    samples: np.ndarray  # uint8 or uint16, H×W×C with C in 1..4, alpha last
    bit_depth: int
    orientation: int = 1
    frames: int = 1
    transparent: np.ndarray | None = None  # the colour that a tRNS chunk marks transparent
    premultiplied: bool = False


def _open_head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        raise RestoreKitError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RestoreKitError(f"{path}: is a folder, not an image file") from None
    except OSError as e:
        raise RestoreKitError(f"{path}: cannot read: {e.strerror or e}") from None
    if not head:
        raise RestoreKitError(f"{path}: file is empty")
    return head


def _check_size(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise RestoreKitError(f"{path}: image has zero size ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise RestoreKitError(
            f"{path}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the limit of "
            f"{max_pixels / 1e6:g} megapixels (possible decompression bomb); raise max_pixels to read it"
        )


def _corrupt(path: Path, error: BaseException | str) -> RestoreKitError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return RestoreKitError(f"{path}: cannot decode image, the file is truncated or corrupt ({reason})")


# --- Pillow: 8-bit images, and 16-bit gray TIFFs tifffile does not take --------------------------------------

_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pillow_limit_lifted() -> Iterator[None]:
    """Switch Pillow's decompression-bomb limit off for one open(), so that ours, checked next, decides."""
    with _PIL_LIMIT_LOCK:
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved


def _read_pillow(path: Path, max_pixels: int | None) -> _Decoded:
    try:
        with _pillow_limit_lifted():
            img = PILImage.open(path)
    except UnidentifiedImageError:
        raise RestoreKitError(f"{path}: not an image file, or an image format that cannot be read") from None
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as e:
        raise RestoreKitError(f"{path}: image is too large (possible decompression bomb): {e}") from None
    except _DECODE_ERRORS as e:
        raise _corrupt(path, e) from None

    with img:
        _check_size(path, img.width, img.height, max_pixels)
        if img.mode in _REFUSED_MODES:
            raise RestoreKitError(f"{path}: {_REFUSED_MODES[img.mode]}; {_SUPPORTED_KINDS}")
        try:
            frames = int(getattr(img, "n_frames", 1))
            img.seek(0)
            img.load()
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as e:
            raise RestoreKitError(f"{path}: image is too large (possible decompression bomb): {e}") from None
        except _DECODE_ERRORS as e:
            raise _corrupt(path, e) from None
        samples, bit_depth, transparent = _pil_samples(img, path)
        return _Decoded(samples, bit_depth, _exif_orientation(img), frames, transparent)


def _exif_orientation(img: PILImage.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not make an otherwise good image unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Undo an EXIF orientation on an H×W×C array, as PIL.ImageOps.exif_transpose does."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return np.rot90(a, 2).transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(a, 1)
    return a


def _unpremultiply(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    out = np.divide(pixels, a, out=np.zeros_like(pixels), where=a > 0)
    return np.clip(out, 0.0, 1.0)


def _convert_channels(pixels: np.ndarray, channels: int | None) -> np.ndarray:
    if channels == 1 and pixels.shape[2] == 3:
        luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.ascontiguousarray(luma[:, :, None], dtype=np.float32)
    if channels == 3 and pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels


# --- 16-bit PNG through imagecodecs ----------------------------------------------------------------------


def _png_header(path: Path, head: bytes) -> tuple[int, int, int]:
    """Width, height and bit depth from the IHDR chunk, which the PNG format puts first."""
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise _corrupt(path, "PNG header is incomplete")
    width, height, bit_depth = struct.unpack(">IIB", head[16:25])
    return width, height, bit_depth


def _read_png16(path: Path) -> _Decoded:
    import imagecodecs

    try:
        data = path.read_bytes()
    except OSError as e:
        raise RestoreKitError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        samples = imagecodecs.png_decode(data)  # a tRNS colour comes back as an alpha channel
    except _DECODE_ERRORS as e:
        raise _corrupt(path, e) from None
    if samples.ndim == 2:
        samples = samples[:, :, None]
    frames, orientation = 1, 1
    # The frame count (APNG) and EXIF orientation from the chunks Pillow parses on open, before the pixels;
    # these are extras, so a file Pillow finds fault with still reads.
    with contextlib.suppress(*_DECODE_ERRORS, UnidentifiedImageError, PILImage.DecompressionBombError):
        with _pillow_limit_lifted():
            img = PILImage.open(stdio.BytesIO(data), formats=["PNG"])
        with img:
            frames = int(getattr(img, "n_frames", 1))
            if "exif" in img.info:  # else getexif() would decode the pixels again, looking for a late eXIf
                orientation = _exif_orientation(img)
    return _Decoded(samples=samples, bit_depth=16, orientation=orientation, frames=frames)


# --- TIFF through tifffile ------------------------------------------------------------------------


def _read_tiff(path: Path, max_pixels: int | None) -> _Decoded | None:
    """Decode an 8/16-bit gray or RGB TIFF with tifffile; None hands the file to Pillow instead.

    Pillow truncates 16-bit colour to 8 bits, so those must come through here; other TIFFs fall back to
    Pillow when tifffile (with imagecodecs) lacks their codec.
    """
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception:  # not a TIFF tifffile understands: Pillow gets the file and reports the problem
        return None
    with tif:
        try:
            page = tif.pages[0]
            bits, sample_format = int(page.bitspersample), int(page.sampleformat)
            photometric, width, height = int(page.photometric), int(page.imagewidth), int(page.imagelength)
            codec_missing = page.compression not in tifffile.TIFF.DECOMPRESSORS or (
                page.predictor != 1 and page.predictor not in tifffile.TIFF.UNPREDICTORS
            )
            compression = getattr(page.compression, "name", str(page.compression))
            n_frames = len(tif.pages)
        except Exception:  # a directory tifffile cannot make sense of: Pillow gets the file and reports it
            return None
        if sample_format != 1 or bits > 16:
            kind = _TIFF_SAMPLE_FORMATS.get(sample_format, f"sample format {sample_format}")
            raise RestoreKitError(f"{path}: {bits}-bit {kind} TIFF images are not supported; {_SUPPORTED_KINDS}")
        if bits not in (8, 16) or photometric not in (0, 1, 2):
            return None
        _check_size(path, width, height, max_pixels)
        if codec_missing:
            if bits == 8 or page.samplesperpixel == 1:
                return None  # Pillow decodes these without loss
            raise RestoreKitError(
                f"{path}: 16-bit colour TIFF with {compression} compression cannot be decoded; "
                "re-save it uncompressed or with ZIP/deflate"
            )
        try:
            samples = page.asarray()
        except _DECODE_ERRORS as e:
            raise _corrupt(path, e) from None
        if page.axes == "SYX":
            samples = np.moveaxis(samples, 0, -1)
        elif page.axes == "YX":
            samples = samples[:, :, None]
        elif page.axes != "YXS":
            return None
        base = 1 if int(page.photometric) in (0, 1) else 3
        extras = tuple(int(e) for e in page.extrasamples or ())
        has_alpha = samples.shape[2] > base and bool(extras) and extras[0] in (1, 2)
        dtype = np.uint16 if bits == 16 else np.uint8
        samples = samples[:, :, : base + 1 if has_alpha else base].astype(dtype)
        if int(page.photometric) == 0:  # MINISWHITE: 0 is white
            samples[:, :, :base] = np.iinfo(dtype).max - samples[:, :, :base]
        orientation_tag = page.tags.get(274)
        orientation = int(orientation_tag.value) if orientation_tag is not None else 1
        return _Decoded(
            samples=samples,
            bit_depth=bits,
            orientation=orientation if 1 <= orientation <= 8 else 1,
            frames=n_frames,
            premultiplied=has_alpha and extras[0] == 1,
        )


# --- finding images ---------------------------------------------------------------------------------------


def list_images(inputs: Iterable[str | os.PathLike[str]], recursive: bool = False) -> list[Path]:
    """Expand files, folders (sorted; subfolders too if ``recursive``) and glob patterns into image paths."""
    found: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append(p)

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    for item in inputs:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            images = _images_in(p, recursive)
            if not images:
                raise RestoreKitError(f"{p}: folder contains no images ({_ext_list()})")
            for q in images:
                add(q)
        elif p.is_file():
            add(p)
        elif glob.has_magic(text):
            matches: list[Path] = []
            for m in sorted(glob.glob(text, recursive=True)):
                mp = Path(m)
                if mp.is_dir():
                    matches.extend(_images_in(mp, recursive))
                elif mp.is_file() and mp.suffix.lower() in IMAGE_EXTENSIONS:
                    matches.append(mp)
            if not matches:
                raise RestoreKitError(f"{text}: pattern matches no images ({_ext_list()})")
            for q in matches:
                add(q)
        else:
            raise RestoreKitError(f"{p}: no such file or folder")
    return found


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        q
        for q in candidates
        # hidden names include our own half-written ".name.tmp-XXXX.png" files and macOS "._" forks
        if q.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in q.relative_to(folder).parts)
        and q.is_file()
    )


def _ext_list() -> str:
    return "looked for " + ", ".join(sorted(IMAGE_EXTENSIONS))
