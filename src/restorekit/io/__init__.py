"""Read and write images as float32 H×W×C arrays in [0, 1], and convert between numpy, PIL and torch.

Pillow does the work for 8-bit images. Pillow cannot hold 16-bit colour, so 16-bit PNGs go through the
small PNG codec below and 16-bit TIFFs through ``tifffile``.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import logging
import os
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from ..errors import RestoreKitError
from .files import atomic_write

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "Image",
    "from_numpy_image",
    "image_to_tensor",
    "current_pixel_limit",
    "list_images",
    "pixel_limit",
    "read_image",
    "tensor_to_image",
    "to_numpy_image",
    "write_image",
]

DEFAULT_MAX_PIXELS = 400_000_000

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
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

_SUPPORTED_KINDS = "use 8- or 16-bit gray, gray+alpha, RGB, RGBA or palette images"
_REFUSED_MODES = {
    "1": "1-bit (black and white) images are not supported",
    "CMYK": "CMYK images are not supported",
    "LAB": "Lab colour images are not supported",
    "HSV": "HSV images are not supported",
    "F": "32-bit floating-point images are not supported",
    "I": "32-bit integer images are not supported",
    "I;16S": "signed 16-bit images are not supported",
}
# Exceptions Pillow, zlib and tifffile raise for broken or truncated data (fuzzing finds them all:
# a corrupt TIFF directory gives TypeError/KeyError from Pillow, IndexError from tifffile).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, LookupError, TypeError)
_TIFF_SAMPLE_FORMATS = {1: "unsigned integer", 2: "signed integer", 3: "floating-point", 5: "complex integer",
                        6: "complex floating-point"}

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
    """tifffile logs a warning per broken tag of a corrupt file; read_image reports the file in one line."""

    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "depth", 0)


_QUIET = _QuietWhileReading()
logging.getLogger("tifffile").addFilter(_QUIET)


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    _QUIET.active.depth = getattr(_QUIET.active, "depth", 0) + 1
    try:
        yield
    finally:
        _QUIET.active.depth -= 1


@dataclass
class Image:
    """An image as float32 H×W×C pixels in [0, 1] (C = 1 or 3), with any alpha kept aside."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    path: Path | None = None

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2]) if self.pixels.ndim == 3 else 1

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


# ---------------------------------------------------------------------------------------------------------
# reading


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
        header = _png_header(path, head)
        _check_size(path, header.width, header.height, max_pixels)
        if header.bit_depth == 16:
            decoded = _read_png16(path, header)
    elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        with _quiet_tifffile():
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
        orientation = _exif_orientation(img)
        return _pillow_samples(img, path, frames, orientation)


def _pillow_samples(img: PILImage.Image, path: Path, frames: int, orientation: int) -> _Decoded:
    mode = img.mode
    converted = img
    if mode == "P":
        converted = img.convert("RGBA" if _palette_has_transparency(img) else "RGB")
    elif mode in ("PA", "RGBa"):
        converted = img.convert("RGBA")
    elif mode == "La":
        converted = img.convert("LA")
    elif mode in ("RGBX", "YCbCr"):
        converted = img.convert("RGB")
    mode = converted.mode

    transparent = None
    if mode.startswith("I;16") and mode != "I;16S":
        samples = np.asarray(converted).astype(np.uint16)
        bit_depth = 16
    elif mode in ("L", "LA", "RGB", "RGBA"):
        samples = np.asarray(converted)
        bit_depth = 8
        trns = converted.info.get("transparency")
        if mode in ("L", "RGB") and isinstance(trns, (int, tuple)):
            transparent = np.atleast_1d(np.asarray(trns, dtype=np.uint8))
    else:
        reason = _REFUSED_MODES.get(mode, f"image mode {mode} is not supported")
        raise RestoreKitError(f"{path}: {reason}; {_SUPPORTED_KINDS}")
    if samples.ndim == 2:
        samples = samples[:, :, None]
    return _Decoded(samples, bit_depth, orientation, frames, transparent)


def _palette_has_transparency(img: PILImage.Image) -> bool:
    return "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA")


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


def _to_float(samples: np.ndarray) -> np.ndarray:
    scale = 65535.0 if samples.dtype == np.uint16 else 255.0
    return samples.astype(np.float32) / np.float32(scale)


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


# --- TIFF through tifffile ------------------------------------------------------------------------


def _read_tiff(path: Path, max_pixels: int | None) -> _Decoded | None:
    """Decode an 8/16-bit gray or RGB TIFF with tifffile; None hands the file to Pillow instead.

    Pillow truncates 16-bit colour to 8 bits, so those must come through here; other TIFFs fall back to
    Pillow when tifffile lacks their codec (LZW and JPEG need the optional imagecodecs package).
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
                f"{path}: 16-bit colour TIFF with {compression} compression needs the 'imagecodecs' "
                "package (pip install imagecodecs); or re-save it uncompressed or with ZIP/deflate"
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


# --- PNG codec for 16-bit ---------------------------------------------------------------------------------

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_CRITICAL_CHUNKS = (b"IHDR", b"PLTE", b"IDAT", b"IEND")


@dataclass
class _PngHeader:
    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int


def _png_header(path: Path, head: bytes) -> _PngHeader:
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise _corrupt(path, "PNG header is incomplete")
    width, height, bit_depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return _PngHeader(width, height, bit_depth, color_type, interlace)


def _read_png16(path: Path, header: _PngHeader) -> _Decoded:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RestoreKitError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        samples, info = _decode_png(data)
    except _PngError as e:
        raise _corrupt(path, e) from None
    orientation = 1
    if "exif" in info:
        exif = PILImage.Exif()
        with contextlib.suppress(Exception):  # broken EXIF is ignored, as for other formats
            exif.load(info["exif"])
            value = exif.get(0x0112, 1)
            orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
    return _Decoded(
        samples=samples,
        bit_depth=header.bit_depth,
        orientation=orientation,
        frames=info.get("frames", 1),
        transparent=info.get("transparent"),
    )


class _PngError(ValueError):
    pass


def _decode_png(data: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a non-palette 8- or 16-bit PNG to an H×W×C uint8/uint16 array and chunk info."""
    if not data.startswith(_PNG_SIG):
        raise _PngError("not a PNG file")
    pos = len(_PNG_SIG)
    idat: list[bytes] = []
    info: dict[str, Any] = {}
    header: tuple[int, ...] | None = None
    ended = False
    while pos + 12 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            break
        body = data[pos + 8 : end - 4]
        if zlib.crc32(data[pos + 4 : end - 4]) != struct.unpack(">I", data[end - 4 : end])[0]:
            if ctype in _CRITICAL_CHUNKS:
                raise _PngError(f"bad checksum in {ctype.decode('latin-1')} chunk")
            pos = end
            continue
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body[:13])
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            ended = True
            break
        elif ctype == b"tRNS":
            info["trns"] = body
        elif ctype == b"eXIf":
            info["exif"] = body
        elif ctype == b"acTL" and length >= 8:
            info["frames"] = struct.unpack(">I", body[:4])[0]
        pos = end
    if header is None:
        raise _PngError("missing IHDR chunk")
    if not ended:
        raise _PngError("file ends before the IEND chunk")
    width, height, bit_depth, color_type, compression, filter_method, interlace = header
    if color_type not in _PNG_CHANNELS or bit_depth not in (8, 16):
        raise _PngError(f"unsupported PNG colour type {color_type} with bit depth {bit_depth}")
    if compression != 0 or filter_method != 0 or interlace not in (0, 1):
        raise _PngError("unknown compression, filter or interlace method")
    channels = _PNG_CHANNELS[color_type]
    bpp = channels * bit_depth // 8

    passes = [(0, 0, 1, 1)] if interlace == 0 else list(_ADAM7)
    shapes = []
    for x0, y0, dx, dy in passes:
        pw, ph = -(-(width - x0) // dx), -(-(height - y0) // dy)
        shapes.append((pw, ph) if pw > 0 and ph > 0 else (0, 0))
    expected = sum(ph * (1 + pw * bpp) for pw, ph in shapes)
    try:
        # max_length bounds the output: a tiny stream cannot inflate past what the header promises
        raw = zlib.decompressobj().decompress(b"".join(idat), expected)
    except zlib.error as e:
        raise _PngError(f"bad compressed data: {e}") from None
    if len(raw) < expected:
        raise _PngError("image data is truncated")

    dtype = np.dtype(">u2") if bit_depth == 16 else np.dtype(np.uint8)
    out = np.empty((height, width, channels), dtype=dtype.newbyteorder("="))
    buf = np.frombuffer(raw, dtype=np.uint8)
    offset = 0
    for (x0, y0, dx, dy), (pw, ph) in zip(passes, shapes):
        if pw == 0:
            continue
        size = ph * (1 + pw * bpp)
        rows = _unfilter(buf[offset : offset + size].reshape(ph, 1 + pw * bpp), bpp)
        offset += size
        out[y0::dy, x0::dx] = rows.view(dtype).reshape(ph, pw, channels)

    trns = info.pop("trns", None)
    if trns is not None and channels in (1, 3) and len(trns) >= 2 * channels:
        values = np.frombuffer(trns[: 2 * channels], dtype=">u2").astype(out.dtype)
        info["transparent"] = values if bit_depth == 16 else (values & 0xFF).astype(np.uint8)
    return out, info


def _unfilter(data: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters on an array of rows (filter byte first); returns the raw bytes."""
    ftypes = data[:, 0]
    if ftypes.max(initial=0) > 4:
        raise _PngError("unknown row filter type")
    filtered = data[:, 1:]
    height, rowbytes = filtered.shape
    out = np.empty((height, rowbytes), dtype=np.uint8)
    prior = np.zeros(rowbytes, dtype=np.uint8)
    # Average and Paeth rows depend on the pixel to the left, so they are undone along anti-diagonals
    # (a wavefront) which keeps numpy vectorised; a strip height bounds the skewed buffer's memory.
    strip = _wavefront_strip(height, rowbytes // bpp, bpp)
    for start in range(0, height, strip):
        stop = min(height, start + strip)
        ft = ftypes[start:stop]
        if np.any(ft >= 3):
            out[start:stop] = _unfilter_wavefront(ft, filtered[start:stop], prior, bpp)
        else:
            _unfilter_simple(ft, filtered[start:stop], prior, bpp, out[start:stop])
        prior = out[stop - 1]
    return out


def _wavefront_strip(height: int, n: int, bpp: int) -> int:
    """Rows per wavefront strip such that its skewed buffers, rows×(n+rows)×bpp int16 each, stay near 48 MB."""
    budget = (12 << 20) / bpp
    rows = int((-n + (n * n + 4 * budget) ** 0.5) / 2)
    return max(16, min(height, rows))


def _unfilter_simple(ft: np.ndarray, filtered: np.ndarray, prior: np.ndarray, bpp: int, out: np.ndarray) -> None:
    for y in range(filtered.shape[0]):
        row = filtered[y]
        if ft[y] == 1:
            row = row.reshape(-1, bpp).cumsum(axis=0, dtype=np.uint8).reshape(-1)
        elif ft[y] == 2:
            row = row + prior
        out[y] = row
        prior = out[y]


def _unfilter_wavefront(ft: np.ndarray, filtered: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    rows, rowbytes = filtered.shape
    n = rowbytes // bpp
    steps = n + rows - 1
    # skew[t + 2, r + 1] holds pixel x = t - r of row r, so one anti-diagonal is one contiguous slice;
    # column 0 holds the prior row, and the zeros stand for pixels outside the image, which filters read as 0.
    skew = np.zeros((steps + 2, rows + 1, bpp), dtype=np.int16)
    skew[1 : n + 1, 0] = prior.reshape(n, bpp)
    fskew = np.zeros((steps, rows, bpp), dtype=np.int16)
    f3 = filtered.reshape(rows, n, bpp)
    for r in range(rows):
        fskew[r : r + n, r] = f3[r]
    masks = [(k, (ft == k)[:, None]) for k in (0, 1, 2, 3) if np.any(ft == k)]
    for t in range(steps):
        r0, r1 = max(0, t - n + 1), min(rows, t + 1)
        a = skew[t + 1, r0 + 1 : r1 + 1]
        b = skew[t + 1, r0:r1]
        c = skew[t, r0:r1]
        pa = np.abs(b - c)
        pb = np.abs(a - c)
        ab = a + b
        pc = np.abs(ab - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = paeth
        for k, mask in masks:  # np.choose would be simpler but is several times slower here
            pred = np.where(mask[r0:r1], (0, a, b, ab >> 1)[k], pred)
        np.bitwise_and(fskew[t, r0:r1] + pred, 0xFF, out=skew[t + 2, r0 + 1 : r1 + 1])
    out = np.empty((rows, n, bpp), dtype=np.uint8)
    for r in range(rows):
        out[r] = skew[r + 2 : r + 2 + n, r + 1]
    return out.reshape(rows, rowbytes)


def _filter_rows(raw: np.ndarray, prior: np.ndarray, bpp: int, ftype: int | None = None) -> np.ndarray:
    """PNG-filter rows of raw bytes with ``ftype``, or per row the filter with the least sum of |signed byte|.

    The automatic choice is among None, Sub and Up only: on 16-bit images Average and Paeth shrink files by
    well under 1% but make decoding several times slower, since undoing them is sequential.
    """
    cur = raw.astype(np.int16)
    up = np.vstack([prior[None].astype(np.int16), cur[:-1]])
    left = np.zeros_like(cur)
    left[:, bpp:] = cur[:, :-bpp]

    def filtered(kind: int) -> np.ndarray:
        if kind == 0:
            return cur
        if kind == 1:
            return cur - left
        if kind == 2:
            return cur - up
        if kind == 3:
            return cur - ((left + up) >> 1)
        upleft = np.zeros_like(cur)
        upleft[:, bpp:] = up[:, :-bpp]
        pa = np.abs(up - upleft)
        pb = np.abs(left - upleft)
        pc = np.abs(left + up - 2 * upleft)
        return cur - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))

    kinds = (0, 1, 2) if ftype is None else (ftype,)
    candidates = np.stack([filtered(k) for k in kinds]).astype(np.uint8)
    if len(kinds) > 1:
        scores = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
        chosen = scores.argmin(axis=0)
    else:
        chosen = np.zeros(raw.shape[0], dtype=np.intp)
    out = np.empty((raw.shape[0], raw.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = np.asarray(kinds, dtype=np.uint8)[chosen]
    out[:, 1:] = candidates[chosen, np.arange(raw.shape[0])]
    return out


def _png_chunk(f: BinaryIO, ctype: bytes, body: bytes) -> None:
    f.write(struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body)))


def _encode_png(f: BinaryIO, samples: np.ndarray, ftype: int | None = None) -> None:
    """Write an H×W×C (C = 1..4) uint8 or uint16 array as a non-interlaced PNG."""
    height, width, channels = samples.shape
    bit_depth = 16 if samples.dtype == np.uint16 else 8
    bpp = channels * bit_depth // 8
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = np.ascontiguousarray(samples, dtype=">u2" if bit_depth == 16 else np.uint8)
    raw = raw.reshape(height, -1).view(np.uint8).reshape(height, width * bpp)

    f.write(_PNG_SIG)
    _png_chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    compressor = zlib.compressobj(6)
    pending = bytearray()
    block = max(1, (1 << 20) // max(1, raw.shape[1]))
    prior = np.zeros(raw.shape[1], dtype=np.uint8)
    for start in range(0, height, block):
        rows = raw[start : start + block]
        pending += compressor.compress(_filter_rows(rows, prior, bpp, ftype).tobytes())
        prior = rows[-1]
        if len(pending) >= 1 << 20:
            _png_chunk(f, b"IDAT", bytes(pending))
            pending.clear()
    pending += compressor.flush()
    _png_chunk(f, b"IDAT", bytes(pending))
    _png_chunk(f, b"IEND", b"")


# ---------------------------------------------------------------------------------------------------------
# writing


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

    if path.exists() and not overwrite:
        raise RestoreKitError(f"{path}: already exists", hint="overwrite=True replaces it", cli_hint="pass --overwrite to replace it")
    def encode(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a named file object: tifffile wants one
            _ENCODERS[fmt](f, samples, quality)

    return atomic_write(path, encode, overwrite=overwrite)


def _quantize(x: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 65535 if bit_depth == 16 else 255
    q = np.rint(np.clip(x, 0.0, 1.0) * np.float32(top))
    return q.astype(np.uint16 if bit_depth == 16 else np.uint8)


def _pil_from_samples(samples: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)


def _save_png(f: BinaryIO, samples: np.ndarray, quality: int) -> None:
    if samples.dtype == np.uint16:
        _encode_png(f, samples)
    else:
        _pil_from_samples(samples).save(f, format="PNG", compress_level=6)


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


# ---------------------------------------------------------------------------------------------------------
# conversions


def image_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """H×W×C (or H×W) float array → 1×C×H×W float32 tensor."""
    import torch

    a = np.asarray(pixels, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise RestoreKitError(f"expected an H×W×C image array, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def tensor_to_image(t: torch.Tensor) -> np.ndarray:
    """1×C×H×W or C×H×W tensor → H×W×C float32 array clamped to [0, 1]."""
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise RestoreKitError(f"expected a batch of one image, got shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3:
        raise RestoreKitError(f"expected a C×H×W or 1×C×H×W tensor, got shape {tuple(t.shape)}")
    a = t.detach().to(device="cpu", dtype=_torch().float32).clamp(0.0, 1.0).permute(1, 2, 0)
    return np.ascontiguousarray(a.numpy())


def to_numpy_image(obj: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Any supported image object → (float32 H×W×C pixels in [0, 1] with C = 1 or 3, meta).

    Accepts numpy arrays (uint8, uint16 or float; H×W or H×W×C with C in 1..4), PIL images, torch tensors
    (C×H×W or 1×C×H×W) and :class:`Image`. An alpha channel goes to ``meta["alpha"]``;
    :func:`from_numpy_image` gives a result back as the same kind of object.
    """
    meta: dict[str, Any] = {"alpha": None, "bit_depth": 8}
    torch_mod = sys.modules.get("torch")
    if isinstance(obj, Image):
        meta.update(kind="image", alpha=obj.alpha, bit_depth=obj.bit_depth, path=obj.path)
        return _float_pixels(obj.pixels), meta
    if isinstance(obj, PILImage.Image):
        mode = obj.mode
        if mode in _REFUSED_MODES:
            raise RestoreKitError(f"{_REFUSED_MODES[mode]}; {_SUPPORTED_KINDS}")
        decoded = _pillow_samples(obj, Path("<PIL image>"), 1, 1)
        pixels = _to_float(decoded.samples)
        meta.update(kind="pil", mode=mode, bit_depth=decoded.bit_depth)
    elif torch_mod is not None and isinstance(obj, torch_mod.Tensor):
        t = obj.detach()
        if t.ndim == 4 and t.shape[0] == 1:
            chw = t[0]
        elif t.ndim == 3:
            chw = t
        elif t.ndim == 2:
            chw = t[None]
        else:
            raise RestoreKitError(f"expected a C×H×W or 1×C×H×W tensor, got shape {tuple(t.shape)}")
        if chw.shape[0] not in (1, 2, 3, 4):
            raise RestoreKitError(f"expected 1 to 4 channels first (C×H×W), got shape {tuple(t.shape)}")
        meta.update(kind="torch", ndim=t.ndim, dtype=t.dtype, device=t.device)
        pixels = _float_pixels(chw.cpu().permute(1, 2, 0).numpy())
    elif isinstance(obj, np.ndarray):
        if obj.ndim not in (2, 3) or (obj.ndim == 3 and obj.shape[2] not in (1, 2, 3, 4)):
            raise RestoreKitError(f"expected an H×W or H×W×C array with C in 1..4, got shape {obj.shape}")
        meta.update(kind="numpy", ndim=obj.ndim, dtype=obj.dtype, bit_depth=16 if obj.dtype == np.uint16 else 8)
        pixels = _float_pixels(obj)
    else:
        raise RestoreKitError(
            f"unsupported image type {type(obj).__name__}; pass a numpy array, PIL image, torch tensor "
            "or restorekit Image"
        )
    if pixels.shape[2] in (2, 4):
        meta["alpha"] = np.ascontiguousarray(pixels[..., -1])
        pixels = pixels[..., :-1]
    return np.ascontiguousarray(pixels), meta


def from_numpy_image(pixels: np.ndarray, meta: dict[str, Any]) -> Any:
    """Give float H×W×C pixels back as the kind of object :func:`to_numpy_image` was given."""
    pixels = np.clip(_float_pixels(pixels), 0.0, 1.0)
    alpha = meta.get("alpha")
    if alpha is not None:
        alpha = resize_alpha(alpha, pixels.shape[0], pixels.shape[1])
    kind = meta.get("kind")
    if kind == "image":
        return Image(pixels=pixels, alpha=alpha, bit_depth=meta.get("bit_depth", 8), path=None)
    full = pixels if alpha is None else np.concatenate([pixels, alpha[:, :, None]], axis=2)
    if kind == "pil":
        if meta["mode"].startswith("I;16") and full.shape[2] == 1:
            return PILImage.fromarray(_quantize(full, 16)[:, :, 0])
        return _pil_from_samples(_quantize(full, 8))
    if kind == "torch":
        torch = _torch()
        t = torch.from_numpy(np.ascontiguousarray(full.transpose(2, 0, 1)))
        dtype = meta["dtype"]
        if dtype == torch.uint8:
            t = torch.from_numpy(np.ascontiguousarray(_quantize(full, 8).transpose(2, 0, 1)))
        else:
            t = t.to(dtype)
        if meta["ndim"] == 4:
            t = t[None]
        elif meta["ndim"] == 2 and t.shape[0] == 1:
            t = t[0]
        return t.to(meta["device"])
    if kind == "numpy":
        dtype = np.dtype(meta["dtype"])
        if dtype == np.uint8:
            out = _quantize(full, 8)
        elif dtype == np.uint16:
            out = _quantize(full, 16)
        else:
            out = full.astype(dtype)
        return out[:, :, 0] if meta["ndim"] == 2 and out.shape[2] == 1 else out
    raise RestoreKitError(f"unknown image kind {kind!r} in meta")


def resize_alpha(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an H×W alpha mask (bicubic, clamped) to another size, e.g. after super-resolution."""
    if alpha.shape == (height, width):
        return alpha.astype(np.float32, copy=False)
    small = PILImage.fromarray(np.ascontiguousarray(alpha, dtype=np.float32))
    resized = np.asarray(small.resize((width, height), PILImage.Resampling.BICUBIC), dtype=np.float32)
    return np.clip(resized, 0.0, 1.0)


def _float_pixels(a: Any) -> np.ndarray:
    """uint8/uint16/float array (H×W or H×W×C) → float32 H×W×C; floats far outside [0, 1] are refused."""
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise RestoreKitError(f"expected an H×W or H×W×C image, got shape {a.shape}")
    if a.dtype == np.uint8 or a.dtype == np.uint16:
        return _to_float(a)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.floating):
        raise RestoreKitError(f"unsupported pixel type {a.dtype}; use uint8, uint16 or float in [0, 1]")
    f = a.astype(np.float32, copy=False)
    if f.size:
        if not np.isfinite(f).all():
            raise RestoreKitError("image contains NaN or infinite values")
        lo, hi = float(f.min()), float(f.max())
        # small overshoot is normal for network outputs; far outside means another scale (0..255, -1..1)
        if lo < -0.5 or hi > 2.0:
            raise RestoreKitError(
                f"float pixels must be in [0, 1], found {lo:g}..{hi:g} (divide 0..255 data by 255)"
            )
    return np.clip(f, 0.0, 1.0)


def _float_alpha(alpha: Any) -> np.ndarray:
    a = _float_pixels(alpha)
    if a.shape[2] != 1:
        raise RestoreKitError(f"alpha must be H×W, got shape {np.shape(alpha)}")
    return a[:, :, 0]


def _torch() -> Any:
    import torch

    return torch


# ---------------------------------------------------------------------------------------------------------
# finding images


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
