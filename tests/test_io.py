"""Tests for restorekit.io: formats, bit depths, atomic writes, refusals and conversions."""

from __future__ import annotations

import logging
import os
import struct
import warnings
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import ExifTags, ImageOps, features
from PIL import Image as PILImage

from restorekit.errors import RestoreKitError
from restorekit.io import (
    Image,
    from_numpy_image,
    image_to_tensor,
    list_images,
    read_image,
    tensor_to_image,
    to_numpy_image,
    write_image,
)
from restorekit.io import write as rio_write

RNG = np.random.default_rng(1234)


def random_samples(h: int, w: int, c: int, bits: int) -> np.ndarray:
    dtype = np.uint16 if bits == 16 else np.uint8
    return RNG.integers(0, np.iinfo(dtype).max, size=(h, w, c), endpoint=True, dtype=dtype)


def as_samples(img: Image, bits: int) -> np.ndarray:
    """The image's pixels (and alpha) back as integers, for exact comparisons."""
    full = img.pixels if img.alpha is None else np.concatenate([img.pixels, img.alpha[:, :, None]], axis=2)
    top = 65535 if bits == 16 else 255
    return np.rint(full.astype(np.float64) * top).astype(np.int64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")


def smooth_rgb(h: int = 48, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 7) * np.cos(yy / 9)], axis=2)


def one_line_error(excinfo: pytest.ExceptionInfo[RestoreKitError], path: Path, *words: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert str(path) in msg
    for word in words:
        assert word.lower() in msg.lower(), msg
    return msg


PNG_SIG = b"\x89PNG\r\n\x1a\n"
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_bytes(samples: np.ndarray, *, interlace: bool = False, chunks=()) -> bytes:
    """A PNG written independently of restorekit and its libraries: unfiltered rows, optionally Adam7."""
    h, w, c = samples.shape
    bits = 16 if samples.dtype == np.uint16 else 8
    stream = b""
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        sub = np.ascontiguousarray(samples[y0::dy, x0::dx], dtype=">u2" if bits == 16 else np.uint8)
        if sub.size:  # a pass with no pixels has no rows either
            stream += b"".join(b"\x00" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", w, h, bits, COLOR_TYPES[c], 0, 0, int(interlace))
    extra = b"".join(png_chunk(ctype, body) for ctype, body in chunks)
    return PNG_SIG + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", zlib.compress(stream)) + png_chunk(b"IEND", b"")


def decode_png_reference(data: bytes) -> np.ndarray:
    """A plain-Python PNG reader (non-interlaced, all five row filters), independent of libpng and Pillow."""
    assert data.startswith(PNG_SIG)
    pos, idat, ihdr = len(PNG_SIG), b"", b""
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body, crc = data[pos + 8 : pos + 8 + length], data[pos + 8 + length : pos + 12 + length]
        assert struct.unpack(">I", crc)[0] == zlib.crc32(ctype + body)
        ihdr = body if ctype == b"IHDR" else ihdr
        idat += body if ctype == b"IDAT" else b""
        pos += 12 + length
    w, h, bits, color_type, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert interlace == 0
    channels = {v: k for k, v in COLOR_TYPES.items()}[color_type]
    bpp = channels * bits // 8
    stride = w * bpp
    raw, prior, out = zlib.decompress(idat), bytearray(stride), bytearray()
    for y in range(h):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= min(abs(p - b), abs(p - c)) else b if abs(p - b) <= abs(p - c) else c
            line[i] = (line[i] + (0, a, b, (a + b) // 2, paeth)[ftype]) & 0xFF
        out += line
        prior = line
    return np.frombuffer(bytes(out), dtype=">u2" if bits == 16 else np.uint8).reshape(h, w, channels)


# --- round trips through write_image / read_image ---------------------------------------------------------

LOSSLESS = [(ext, bits, c) for ext in (".png", ".tif", ".tiff") for bits in (8, 16) for c in (1, 2, 3, 4)]
LOSSLESS += [(".bmp", 8, c) for c in (1, 3)]


@pytest.mark.parametrize(("ext", "bits", "channels"), LOSSLESS)
def test_lossless_round_trip(tmp_path: Path, ext: str, bits: int, channels: int) -> None:
    samples = random_samples(9, 13, channels, bits)
    path = write_image(tmp_path / f"x{ext}", samples, bit_depth=bits)
    img = read_image(path)
    assert img.bit_depth == bits
    assert img.channels == (1 if channels <= 2 else 3)
    assert (img.alpha is not None) == (channels in (2, 4))
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (9, 13, img.channels)
    np.testing.assert_array_equal(as_samples(img, bits), samples)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_psnr(tmp_path: Path, channels: int) -> None:
    pixels = smooth_rgb()
    if channels == 1:
        pixels = pixels[:, :, :1]
    img = read_image(write_image(tmp_path / "x.jpg", pixels, quality=95))
    assert img.channels == channels and img.bit_depth == 8
    assert psnr(img.pixels, pixels) > 35


def test_image_object_round_trip_keeps_bit_depth_and_alpha(tmp_path: Path) -> None:
    samples = random_samples(6, 7, 4, 16)
    first = read_image(write_image(tmp_path / "a.png", samples))
    assert first.bit_depth == 16
    second = read_image(write_image(tmp_path / "b.png", first))
    assert second.bit_depth == 16
    np.testing.assert_array_equal(as_samples(second, 16), samples)


def test_our_16bit_png_is_standard(tmp_path: Path) -> None:
    gray = random_samples(7, 11, 1, 16)
    write_image(tmp_path / "g.png", gray, bit_depth=16)
    with PILImage.open(tmp_path / "g.png") as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), gray[:, :, 0])
    rgb = random_samples(7, 11, 3, 16)
    write_image(tmp_path / "c.png", rgb, bit_depth=16)
    with PILImage.open(tmp_path / "c.png") as im:  # Pillow keeps the high byte of 16-bit colour
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), (rgb >> 8).astype(np.uint8))


def test_our_16bit_tiff_read_by_tifffile(tmp_path: Path) -> None:
    rgba = random_samples(5, 6, 4, 16)
    write_image(tmp_path / "c.tif", rgba, bit_depth=16)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.tif"), rgba)


def test_16bit_files_from_other_writers(tmp_path: Path) -> None:
    gray = random_samples(5, 8, 1, 16)[:, :, 0]
    PILImage.fromarray(gray).save(tmp_path / "pil.png")
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "pil.png"), 16)[:, :, 0], gray)
    PILImage.fromarray(gray).save(tmp_path / "pil.tif")
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "pil.tif"), 16)[:, :, 0], gray)

    rgb = random_samples(5, 8, 3, 16)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "planar.tif"), 16), rgb)
    la = random_samples(5, 8, 2, 16)
    tifffile.imwrite(tmp_path / "la.tif", la, photometric="minisblack", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "la.tif"), 16), la)


def test_tiff_from_pillow_with_lzw(tmp_path: Path) -> None:
    rgb = random_samples(9, 7, 3, 8)
    PILImage.fromarray(rgb).save(tmp_path / "rgb.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "rgb.tif"), 8), rgb)
    gray = random_samples(9, 7, 1, 16)[:, :, 0]
    PILImage.fromarray(gray).save(tmp_path / "g16.tif", compression="tiff_lzw")
    img = read_image(tmp_path / "g16.tif")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(as_samples(img, 16)[:, :, 0], gray)


def test_tiff_orientation_tag(tmp_path: Path) -> None:
    rgb = random_samples(4, 6, 3, 16)
    tifffile.imwrite(tmp_path / "o.tif", rgb, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "o.tif"), 16), np.rot90(rgb, -1))


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp", ".gif"])
def test_palette_images(tmp_path: Path, ext: str) -> None:
    rgb = (random_samples(10, 12, 3, 8) // 64 * 64).astype(np.uint8)
    pal = PILImage.fromarray(rgb).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / f"p{ext}")
    img = read_image(tmp_path / f"p{ext}")
    assert img.channels == 3 and img.alpha is None
    np.testing.assert_array_equal(as_samples(img, 8), np.asarray(pal.convert("RGB")))


@pytest.mark.parametrize("ext", [".png", ".gif"])
def test_palette_with_transparency_gets_alpha(tmp_path: Path, ext: str) -> None:
    pal = PILImage.new("P", (6, 4), 1)
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * (3 * 254))
    pal.putpixel((0, 0), 0)
    pal.save(tmp_path / f"t{ext}", transparency=0)
    img = read_image(tmp_path / f"t{ext}")
    assert img.alpha is not None and img.channels == 3
    assert img.alpha[0, 0] == 0 and img.alpha[1, 1] == 1
    np.testing.assert_array_equal(as_samples(img, 8)[1, 1, :3], [200, 10, 10])


def test_png_trns_colour_becomes_alpha(tmp_path: Path) -> None:
    rgb = random_samples(4, 5, 3, 16)
    rgb[0, 0] = (1, 2, 3)
    data = png_bytes(rgb, chunks=[(b"tRNS", struct.pack(">HHH", 1, 2, 3))])
    (tmp_path / "t16.png").write_bytes(data)
    img = read_image(tmp_path / "t16.png")
    assert img.alpha is not None and img.alpha[0, 0] == 0 and img.alpha.sum() == 19

    PILImage.fromarray((rgb >> 8).astype(np.uint8)).save(tmp_path / "t8.png", transparency=(0, 0, 0))
    img8 = read_image(tmp_path / "t8.png")
    assert img8.alpha is not None and img8.alpha[0, 0] == 0


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_webp_lossless_read(tmp_path: Path, mode: str) -> None:
    samples = random_samples(8, 8, len(mode), 8)
    if mode == "RGBA":
        samples[..., 3] = np.maximum(samples[..., 3], 1)  # WebP may recolour fully transparent pixels
    PILImage.fromarray(samples).save(tmp_path / "w.webp", lossless=True, exact=True)
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "w.webp"), 8), samples)


def test_webp_write_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RestoreKitError) as e:
        write_image(tmp_path / "x.webp", smooth_rgb())
    one_line_error(e, tmp_path / "x.webp", ".png", ".tif", ".jpg")
    with pytest.raises(RestoreKitError):
        write_image(tmp_path / "x.xyz", smooth_rgb())


# --- 16-bit PNG interchange -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_our_16bit_png_read_by_independent_decoder(tmp_path: Path, channels: int) -> None:
    noise = random_samples(9, 13, channels, 16)
    smooth = (np.linspace(0, 65535, 9 * 13 * channels).reshape(9, 13, channels)).astype(np.uint16)
    for name, samples in (("noise", noise), ("smooth", smooth)):  # smooth data makes libpng choose filters
        path = write_image(tmp_path / f"{name}.png", samples, bit_depth=16)
        np.testing.assert_array_equal(decode_png_reference(path.read_bytes()), samples)


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_from_another_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, channels: int, bits: int, interlace: bool
) -> None:
    samples = random_samples(9, 17, channels, bits)
    (tmp_path / "x.png").write_bytes(png_bytes(samples, interlace=interlace))
    with caplog.at_level(logging.WARNING):
        img = read_image(tmp_path / "x.png")
    assert img.bit_depth == bits and (img.alpha is not None) == (channels in (2, 4))
    np.testing.assert_array_equal(as_samples(img, bits), samples)
    assert not caplog.records  # libpng's warnings (interlace handling) are not passed on


@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 2), (16, 16)])
def test_interlaced_png_sizes(tmp_path: Path, h: int, w: int) -> None:
    samples = random_samples(h, w, 4, 16)
    (tmp_path / "i.png").write_bytes(png_bytes(samples, interlace=True))
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "i.png"), 16), samples)


def test_16bit_apng_warns(tmp_path: Path) -> None:
    samples = random_samples(4, 5, 3, 16)
    actl = struct.pack(">II", 3, 0)
    fctl = struct.pack(">IIIIIHHBB", 0, 5, 4, 0, 0, 1, 10, 0, 0)  # the IDAT image is the first frame
    (tmp_path / "a.png").write_bytes(png_bytes(samples, chunks=[(b"acTL", actl), (b"fcTL", fctl)]))
    with pytest.warns(UserWarning, match="3 frames"):
        img = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(as_samples(img, 16), samples)


# --- EXIF orientation ---------------------------------------------------------------------------------------


def test_jpeg_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:16, :16] = 255  # bright block top-left in the stored image
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display = stored rotated 90° clockwise
    PILImage.fromarray(arr).save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    img = read_image(tmp_path / "o.jpg")
    assert (img.height, img.width) == (60, 40)
    assert img.pixels[:16, -16:].mean() > 0.9  # block now top-right
    assert img.pixels[-16:, :16].mean() < 0.1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    arr = random_samples(5, 7, 3, 8)
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    PILImage.fromarray(arr).save(tmp_path / "o.png", exif=exif.tobytes())
    with PILImage.open(tmp_path / "o.png") as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "o.png"), 8), expected)


def test_orientation_in_16bit_png(tmp_path: Path) -> None:
    arr = random_samples(5, 7, 3, 16)
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = 8
    (tmp_path / "o.png").write_bytes(png_bytes(arr, chunks=[(b"eXIf", exif.tobytes()[6:])]))
    np.testing.assert_array_equal(as_samples(read_image(tmp_path / "o.png"), 16), np.rot90(arr, 1))


# --- channels, quantisation --------------------------------------------------------------------------------


def test_channels_conversion(tmp_path: Path) -> None:
    rgb = smooth_rgb(8, 9)
    write_image(tmp_path / "c.png", rgb, bit_depth=16)
    gray = read_image(tmp_path / "c.png", channels=1)
    stored = np.rint(rgb * 65535) / 65535
    expected = stored @ np.array([0.299, 0.587, 0.114])
    assert gray.channels == 1
    np.testing.assert_allclose(gray.pixels[:, :, 0], expected, atol=1e-6)
    write_image(tmp_path / "g.png", rgb[:, :, :1])
    three = read_image(tmp_path / "g.png", channels=3)
    assert three.channels == 3
    np.testing.assert_array_equal(three.pixels[:, :, 0], three.pixels[:, :, 2])
    assert read_image(tmp_path / "g.png").channels == 1
    with pytest.raises(RestoreKitError):
        read_image(tmp_path / "g.png", channels=2)


def test_quantisation_rounds_and_clips(tmp_path: Path) -> None:
    values = np.array([[10.4, 10.6, -20.0, 300.0]], dtype=np.float32)[:, :, None] / 255
    img = read_image(write_image(tmp_path / "q.png", values))
    np.testing.assert_array_equal(as_samples(img, 8)[0, :, 0], [10, 11, 0, 255])
    with pytest.raises(RestoreKitError):  # 0..255 data passed as floats is a mistake, not an overshoot
        write_image(tmp_path / "bad.png", values * 255)
    with pytest.raises(RestoreKitError):
        write_image(tmp_path / "nan.png", np.full((2, 2), np.nan, np.float32))


def test_jpeg_and_bmp_drop_alpha_and_depth_with_warning(tmp_path: Path) -> None:
    rgba = random_samples(6, 6, 4, 16)
    with pytest.warns(UserWarning) as record:
        write_image(tmp_path / "a.jpg", rgba, bit_depth=16)
    text = " ".join(str(w.message) for w in record)
    assert "8-bit" in text and "alpha" in text
    img = read_image(tmp_path / "a.jpg")
    assert img.alpha is None and img.bit_depth == 8
    with pytest.warns(UserWarning, match="alpha"):
        write_image(tmp_path / "a.bmp", rgba, bit_depth=8)
    assert read_image(tmp_path / "a.bmp").alpha is None


def test_alpha_argument_and_resizing(tmp_path: Path) -> None:
    pixels = smooth_rgb(8, 10)
    alpha = np.linspace(0, 1, 80, dtype=np.float32).reshape(8, 10)
    img = read_image(write_image(tmp_path / "a.png", pixels, alpha=alpha))
    np.testing.assert_allclose(img.alpha, alpha, atol=0.5 / 255)
    big = read_image(write_image(tmp_path / "b.png", Image(smooth_rgb(16, 20), alpha=alpha)))
    assert big.alpha is not None and big.alpha.shape == (16, 20)
    with pytest.raises(RestoreKitError):
        write_image(tmp_path / "c.png", random_samples(3, 3, 4, 8), alpha=alpha)


# --- overwrite and atomic writes ---------------------------------------------------------------------------


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write_image(tmp_path / "sub" / "deeper" / "o.png", smooth_rgb())
    assert path == tmp_path / "sub" / "deeper" / "o.png" and path.is_file()
    before = path.read_bytes()
    with pytest.raises(RestoreKitError) as e:
        write_image(path, np.zeros((3, 3)))
    one_line_error(e, path, "overwrite=True")
    assert path.read_bytes() == before
    write_image(path, np.zeros((3, 3)), overwrite=True)
    assert read_image(path).width == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["o.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_file_has_normal_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    reference.write_bytes(b"")
    path = write_image(tmp_path / "p.png", smooth_rgb())
    assert path.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_failed_encoder_leaves_existing_file_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(tmp_path / "keep.png", smooth_rgb())
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(PILImage.Image, "save", broken_save)
    with pytest.raises((RestoreKitError, OSError)):
        write_image(path, np.zeros((4, 4, 3)), overwrite=True)
    with pytest.raises((RestoreKitError, OSError)):
        write_image(tmp_path / "new.png", np.zeros((4, 4, 3)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_failed_16bit_encoder_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(tmp_path / "keep.png", smooth_rgb(), bit_depth=16)
    before = path.read_bytes()

    def crashing_codec(*args, **kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(imagecodecs, "png_encode", crashing_codec)
    with pytest.raises(RuntimeError):
        write_image(path, np.zeros((4, 4, 3)), bit_depth=16, overwrite=True)
    monkeypatch.undo()

    def crash_mid_write(f, samples, quality):
        f.write(PNG_SIG)
        raise RuntimeError("encoder crashed")

    monkeypatch.setitem(rio_write._ENCODERS, "PNG", crash_mid_write)
    with pytest.raises(RuntimeError):
        write_image(path, np.zeros((4, 4, 3)), bit_depth=16, overwrite=True)
    with pytest.raises(RuntimeError):
        write_image(tmp_path / "new.png", np.zeros((4, 4, 3)), bit_depth=16)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


# --- refusals ---------------------------------------------------------------------------------------------


def test_missing_empty_and_folder(tmp_path: Path) -> None:
    with pytest.raises(RestoreKitError) as e:
        read_image(tmp_path / "nope.png")
    one_line_error(e, tmp_path / "nope.png", "no such file")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(RestoreKitError) as e:
        read_image(tmp_path / "empty.png")
    one_line_error(e, tmp_path / "empty.png", "empty")
    with pytest.raises(RestoreKitError) as e:
        read_image(tmp_path)
    one_line_error(e, tmp_path, "folder")


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n" * 5)
    with pytest.raises(RestoreKitError) as e:
        read_image(path)
    one_line_error(e, path, "not an image")


@pytest.mark.parametrize("bits", [8, 16])
def test_truncated_png(tmp_path: Path, bits: int) -> None:
    path = write_image(tmp_path / "t.png", random_samples(64, 64, 3, bits), bit_depth=bits)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RestoreKitError) as e:
        read_image(path)
    one_line_error(e, path, "truncated")


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = write_image(tmp_path / "t.jpg", random_samples(64, 64, 3, 8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RestoreKitError) as e:
        read_image(path)
    one_line_error(e, path, "truncated")


@pytest.mark.parametrize(
    ("name", "mode", "word"),
    [("cmyk.jpg", "CMYK", "CMYK"), ("bits.png", "1", "1-bit"), ("float.tif", "F", "floating"), ("lab.tif", "LAB", "Lab")],
)
def test_unsupported_modes(tmp_path: Path, name: str, mode: str, word: str) -> None:
    path = tmp_path / name
    PILImage.new(mode, (8, 8)).save(path)
    with pytest.raises(RestoreKitError) as e:
        read_image(path)
    one_line_error(e, path, word, "RGB")


def crafted_png(width: int, height: int, bits: int = 8) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bits, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return PNG_SIG + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


@pytest.mark.parametrize("bits", [8, 16])
def test_huge_png_header_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bits: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(crafted_png(100_000, 100_000, bits))

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoder was reached")

    monkeypatch.setattr(PILImage, "open", must_not_decode)
    monkeypatch.setattr(imagecodecs, "png_decode", must_not_decode)
    with pytest.raises(RestoreKitError) as e:
        read_image(path)
    one_line_error(e, path, "100000x100000", "limit")


def test_zero_size_png(tmp_path: Path) -> None:
    path = tmp_path / "zero.png"
    path.write_bytes(crafted_png(0, 10))
    with pytest.raises(RestoreKitError) as e:
        read_image(path)
    one_line_error(e, path, "zero size")


def test_max_pixels_for_other_formats(tmp_path: Path) -> None:
    path = write_image(tmp_path / "m.jpg", smooth_rgb(20, 30))
    with pytest.raises(RestoreKitError) as e:
        read_image(path, max_pixels=599)
    one_line_error(e, path, "limit")
    assert read_image(path, max_pixels=600).width == 30
    assert read_image(path, max_pixels=None).width == 30
    tif = write_image(tmp_path / "m.tif", random_samples(20, 30, 3, 16), bit_depth=16)
    with pytest.raises(RestoreKitError):
        read_image(tif, max_pixels=100)


def test_pillow_limit_does_not_preempt_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(tmp_path / "p.bmp", smooth_rgb(60, 60))
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would raise at 2x this
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(path).width == 60
    assert PILImage.MAX_IMAGE_PIXELS == 100


def test_pillow_bomb_error_becomes_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(tmp_path / "p.bmp", smooth_rgb(6, 6))

    def bomb(*args, **kwargs):
        raise PILImage.DecompressionBombError("too many pixels")

    monkeypatch.setattr(PILImage, "open", bomb)
    with pytest.raises(RestoreKitError) as e:
        read_image(path)
    one_line_error(e, path, "too large")


def test_write_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(RestoreKitError):
        write_image(tmp_path / "a.png", smooth_rgb(), bit_depth=12)
    with pytest.raises(RestoreKitError):
        write_image(tmp_path / "a.jpg", smooth_rgb(), quality=0)
    with pytest.raises(RestoreKitError):
        write_image(tmp_path / "a.png", np.zeros((0, 4, 3)))
    with pytest.raises(RestoreKitError):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 5)))
    assert not any(tmp_path.iterdir())


# --- animation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".gif", ".png"])
def test_animation_warns_and_reads_first_frame(tmp_path: Path, ext: str) -> None:
    frames = [PILImage.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / f"anim{ext}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with pytest.warns(UserWarning, match="anim"):
        img = read_image(path)
    assert (img.height, img.width) == (6, 8)
    np.testing.assert_array_equal(as_samples(img, 8)[..., :3].reshape(-1, 3), np.tile([255, 0, 0], (48, 1)))


# --- conversions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arr",
    [
        random_samples(5, 6, 1, 8)[:, :, 0],
        random_samples(5, 6, 3, 8),
        random_samples(5, 6, 4, 8),
        random_samples(5, 6, 1, 16)[:, :, 0],
        random_samples(5, 6, 3, 16),
        RNG.random((5, 6, 3)).astype(np.float32),
        RNG.random((5, 6)),
    ],
)
def test_numpy_round_trip(arr: np.ndarray) -> None:
    pixels, meta = to_numpy_image(arr)
    assert pixels.dtype == np.float32 and pixels.ndim == 3 and pixels.shape[2] in (1, 3)
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert (meta["alpha"] is not None) == (arr.ndim == 3 and arr.shape[2] == 4)
    back = from_numpy_image(pixels, meta)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    if arr.dtype.kind == "f":
        np.testing.assert_allclose(back, arr, atol=1e-6)
    else:
        np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
def test_pil_round_trip(mode: str) -> None:
    if mode == "I;16":
        pil = PILImage.fromarray(random_samples(5, 6, 1, 16)[:, :, 0])
    else:
        channels = len(mode)
        samples = random_samples(5, 6, channels, 8)
        pil = PILImage.fromarray(samples[:, :, 0] if channels == 1 else samples)
    pixels, meta = to_numpy_image(pil)
    back = from_numpy_image(pixels, meta)
    assert isinstance(back, PILImage.Image) and back.mode == pil.mode
    np.testing.assert_array_equal(np.asarray(back), np.asarray(pil))


def test_pil_palette_comes_back_as_rgb() -> None:
    pal = PILImage.fromarray(random_samples(5, 6, 3, 8)).convert("P")
    back = from_numpy_image(*to_numpy_image(pal))
    assert back.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(back), np.asarray(pal.convert("RGB")))


@pytest.mark.parametrize("shape", [(3, 5, 6), (1, 3, 5, 6), (1, 1, 5, 6), (5, 6), (4, 5, 6)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.uint8])
def test_torch_round_trip(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    if dtype == torch.uint8:
        t = torch.randint(0, 256, shape, dtype=torch.uint8)
    else:
        t = torch.rand(shape).to(dtype)
    pixels, meta = to_numpy_image(t)
    assert pixels.shape[:2] == (5, 6)
    back = from_numpy_image(pixels, meta)
    assert isinstance(back, torch.Tensor) and back.shape == t.shape and back.dtype == t.dtype
    if dtype == torch.uint8:
        assert torch.equal(back, t)
    else:
        torch.testing.assert_close(back.float(), t.float(), atol=1e-3, rtol=0)


def test_image_round_trip_and_upscaled_result() -> None:
    img = Image(pixels=smooth_rgb(4, 5), alpha=np.ones((4, 5), np.float32), bit_depth=16, path=Path("a.png"))
    pixels, meta = to_numpy_image(img)
    out = from_numpy_image(np.repeat(np.repeat(pixels, 2, axis=0), 2, axis=1), meta)
    assert isinstance(out, Image) and out.bit_depth == 16
    assert out.alpha is not None and out.alpha.shape == (8, 10)
    np.testing.assert_allclose(out.alpha, 1.0, atol=1e-6)


def test_upscaled_numpy_result_keeps_alpha() -> None:
    rgba = random_samples(4, 5, 4, 8)
    pixels, meta = to_numpy_image(rgba)
    out = from_numpy_image(np.zeros((8, 10, 3), np.float32), meta)
    assert out.shape == (8, 10, 4) and out.dtype == np.uint8


def test_to_numpy_refusals() -> None:
    with pytest.raises(RestoreKitError):
        to_numpy_image([[0, 1], [1, 0]])
    with pytest.raises(RestoreKitError):
        to_numpy_image(np.zeros((4, 4), np.int32))
    with pytest.raises(RestoreKitError):
        to_numpy_image(np.full((4, 4), 255.0))
    with pytest.raises(RestoreKitError):
        to_numpy_image(np.zeros((4, 4, 7), np.uint8))
    with pytest.raises(RestoreKitError):
        to_numpy_image(PILImage.new("CMYK", (4, 4)))
    with pytest.raises(RestoreKitError):
        to_numpy_image(torch.zeros(2, 3, 4, 4))


def test_tensor_helpers() -> None:
    pixels = smooth_rgb(5, 7)
    t = image_to_tensor(pixels)
    assert t.shape == (1, 3, 5, 7) and t.dtype == torch.float32
    np.testing.assert_array_equal(tensor_to_image(t), pixels)
    np.testing.assert_array_equal(tensor_to_image(t[0]), pixels)
    assert image_to_tensor(pixels[:, :, 0]).shape == (1, 1, 5, 7)
    clamped = tensor_to_image(torch.tensor([[[-1.0, 0.5, 2.0]]], dtype=torch.float64))
    np.testing.assert_array_equal(clamped, [[[0.0], [0.5], [1.0]]])
    assert clamped.dtype == np.float32
    with pytest.raises(RestoreKitError):
        tensor_to_image(torch.zeros(2, 3, 4, 4))


# --- list_images ------------------------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    for rel in ["b.png", "a.JPG", "c.tif", "notes.txt", ".hidden.png", "sub/d.png", "sub/deep/e.bmp", "other/f.png"]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_list_images_folders_globs_and_files(tmp_path: Path) -> None:
    make_tree(tmp_path)
    names = lambda paths: [p.relative_to(tmp_path).as_posix() for p in paths]  # noqa: E731
    assert names(list_images([tmp_path])) == ["a.JPG", "b.png", "c.tif"]
    assert names(list_images([tmp_path], recursive=True)) == [
        "a.JPG", "b.png", "c.tif", "other/f.png", "sub/d.png", "sub/deep/e.bmp",
    ]
    assert names(list_images([str(tmp_path / "*.png")])) == ["b.png"]
    assert names(list_images([str(tmp_path / "**" / "*.png")])) == ["b.png", "other/f.png", "sub/d.png"]
    # explicit files are kept even with other extensions, duplicates are dropped, order follows the inputs
    assert names(list_images([tmp_path / "notes.txt", tmp_path / "sub", tmp_path / "sub" / "d.png"])) == [
        "notes.txt", "sub/d.png",
    ]


def test_list_images_errors(tmp_path: Path) -> None:
    make_tree(tmp_path)
    with pytest.raises(RestoreKitError) as e:
        list_images([str(tmp_path / "*.webp")])
    assert "*.webp" in str(e.value) and "no images" in str(e.value)
    with pytest.raises(RestoreKitError) as e:
        list_images([tmp_path / "missing"])
    one_line_error(e, tmp_path / "missing", "no such")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RestoreKitError) as e:
        list_images([tmp_path / "empty"])
    one_line_error(e, tmp_path / "empty", "no images")


# --- property test ----------------------------------------------------------------------------------------


@st.composite
def sample_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.sampled_from([1, 2, 3, 4])))
    return draw(arrays(dtype, shape))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(samples=sample_arrays(), ext=st.sampled_from([".png", ".tif"]))
def test_property_exact_round_trip(tmp_path: Path, samples: np.ndarray, ext: str) -> None:
    bits = 16 if samples.dtype == np.uint16 else 8
    path = write_image(tmp_path / f"h{ext}", samples, overwrite=True)
    img = read_image(path)
    assert img.bit_depth == bits
    np.testing.assert_array_equal(as_samples(img, bits), samples)
