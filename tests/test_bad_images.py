"""Malformed, hostile and odd image files, generated here: each one read alone (a RestoreKitError whose
one-line message names the file and the reason) and all of them in one `restorekit restore` batch
(the good ones restored, each bad one reported in the summary, exit code 1, no stray files)."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from restorekit.checkpoints import save_checkpoint
from restorekit.cli import main
from restorekit.errors import RestoreKitError
from restorekit.io import read_image, write_image
from restorekit.models.dncnn import DnCNN
from restorekit.models.registry import create_model, register_model

TINY = "rk-tiny-dncnn"


def _tiny_dncnn(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=3, features=8, batch_norm=False, bias=True)


try:
    register_model(TINY, family="dncnn", task="denoise", channels=1)(_tiny_dncnn)
except ValueError:  # registered by another test module of this session
    pass


# --------------------------------------------------------------------------- the corpus

RNG = np.random.default_rng(0)
RGB = (RNG.random((12, 10, 3)) * 255).astype(np.uint8)


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _png_claiming(width: int, height: int, bit_depth: int = 8) -> bytes:
    """A PNG of a few hundred bytes whose header promises width × height pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _tiff_claiming(path: Path, width: int, height: int) -> None:
    """A tiny TIFF whose ImageWidth/ImageLength tags are patched to a huge size."""
    tifffile.imwrite(path, np.zeros((2, 2), np.uint8))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        for name, value in (("ImageWidth", width), ("ImageLength", height)):
            tag = tags[name]
            fmt = "<H" if tag.dtype == 3 else "<I"
            struct.pack_into(fmt, data, tag.valueoffset, value)
    path.write_bytes(bytes(data))


def _bytes_of(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def make_good(folder: Path) -> dict[str, dict]:
    """Files that must be restored; the value says what to check on the output."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(RGB)
    rgb.convert("L").save(folder / "gray.png")
    rgb.save(folder / "photo.jpg", quality=95)
    rgb.save(folder / "plain.bmp")
    write_image(folder / "deep16.png", RNG.random((9, 11, 3)).astype(np.float32), bit_depth=16)
    write_image(folder / "deep16.tif", RNG.random((9, 11, 1)).astype(np.float32), bit_depth=16)
    Image.fromarray(np.dstack([RGB, RGB[:, :, :1]])).save(folder / "alpha.png")  # RGBA
    rgb.convert("LA").save(folder / "gray-alpha.png")
    rgb.convert("P").save(folder / "palette.png")
    frames = [rgb, Image.fromarray(255 - RGB)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    frames[0].save(folder / "animated-apng.png", save_all=True, append_images=frames[1:])
    Image.fromarray(RGB[:1, :1]).save(folder / "one-pixel.png")  # smaller than any receptive field
    Image.fromarray(RGB[:2, :3, 0]).save(folder / "two-by-three.png")
    (folder / "jpeg-named.png").write_bytes(_bytes_of(rgb, "JPEG"))  # wrong extension: decoded by content
    (folder / "png-named.jpg").write_bytes(_bytes_of(rgb, "PNG"))
    return {
        "gray.png": {"size": (12, 10)},
        "photo.jpg": {"size": (12, 10)},
        "plain.bmp": {"size": (12, 10)},
        "deep16.png": {"size": (9, 11), "bit_depth": 16},
        "deep16.tif": {"size": (9, 11), "bit_depth": 16},
        "alpha.png": {"size": (12, 10), "alpha": True},
        "gray-alpha.png": {"size": (12, 10), "alpha": True},
        "palette.png": {"size": (12, 10)},
        "animated.gif": {"size": (12, 10), "warns": "first"},
        "animated-apng.png": {"size": (12, 10), "warns": "first"},
        "one-pixel.png": {"size": (1, 1)},
        "two-by-three.png": {"size": (2, 3)},
        "jpeg-named.png": {"size": (12, 10)},
        "png-named.jpg": {"size": (12, 10)},
    }


def make_bad(folder: Path) -> dict[str, str]:
    """Files that must be refused, with a part of the reason the message must give."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(RGB)
    png = _bytes_of(rgb, "PNG")
    jpg = _bytes_of(rgb, "JPEG")
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "truncated-jpeg.jpg").write_bytes(jpg[: len(jpg) // 2])
    deep = folder / "deep.tmp"
    write_image(deep.with_suffix(".png"), RNG.random((20, 20, 3)).astype(np.float32), bit_depth=16)
    data16 = deep.with_suffix(".png").read_bytes()
    deep.with_suffix(".png").unlink()
    (folder / "truncated16.png").write_bytes(data16[: len(data16) * 2 // 3])
    (folder / "not-an-image.png").write_text("hello, I am a text file\n")
    (folder / "random-bytes.tif").write_bytes(b"II*\x00" + bytes(RNG.integers(0, 256, 200, dtype=np.uint8)))
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.convert("LAB").save(folder / "lab.tif")
    rgb.convert("1").save(folder / "bilevel.png")
    tifffile.imwrite(folder / "float32.tif", RNG.random((8, 8, 3)).astype(np.float32), photometric="rgb")
    tifffile.imwrite(folder / "signed16.tif", (RNG.random((8, 8)) * 1000).astype(np.int16))
    (folder / "bomb.png").write_bytes(_png_claiming(100_000, 100_000))
    (folder / "bomb16.png").write_bytes(_png_claiming(50_000, 50_000, 16))
    gif = bytearray(_bytes_of(Image.fromarray(RGB[:, :, 0]), "GIF"))
    gif[6:10] = struct.pack("<HH", 65_000, 65_000)  # the logical screen size
    (folder / "bomb-screen.gif").write_bytes(bytes(gif))
    _tiff_claiming(folder / "bomb.tif", 100_000, 100_000)
    (folder / "zero-size.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0))
                                           + _chunk(b"IEND", b""))
    return {
        "empty.png": "file is empty",
        "truncated.png": "truncated or corrupt",
        "truncated-jpeg.jpg": "truncated or corrupt",
        "truncated16.png": "truncated or corrupt",
        "not-an-image.png": "not an image file",
        "random-bytes.tif": "",  # any clear RestoreKitError
        "cmyk.jpg": "CMYK images are not supported",
        "lab.tif": "Lab colour images are not supported",
        "bilevel.png": "1-bit",
        "float32.tif": "32-bit floating-point",
        "signed16.tif": "signed integer",
        "bomb.png": "decompression bomb",
        "bomb16.png": "decompression bomb",
        "bomb-screen.gif": "decompression bomb",
        "bomb.tif": "decompression bomb",
        "zero-size.png": "zero size",
    }


# --------------------------------------------------------------------------- read_image, one file at a time


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, dict], dict[str, str]]:
    folder = tmp_path_factory.mktemp("corpus") / "in"
    return folder, make_good(folder), make_bad(folder)


def test_corpus_is_what_it_claims(corpus) -> None:
    folder, good, bad = corpus
    assert sorted(p.name for p in folder.iterdir()) == sorted([*good, *bad])
    assert Image.open(folder / "cmyk.jpg").mode == "CMYK" and Image.open(folder / "lab.tif").mode == "LAB"
    assert (folder / "bomb.png").stat().st_size < 1000 and (folder / "bomb.tif").stat().st_size < 1000


def test_each_bad_file_is_one_clear_error(corpus) -> None:
    folder, _, bad = corpus
    for name, reason in bad.items():
        path = folder / name
        with pytest.raises(RestoreKitError) as info:
            read_image(path)
        message = str(info.value)
        assert message.startswith(f"{path}: "), message  # names the file
        assert reason in message, (name, message)  # and says why
        assert "\n" not in message, message


def test_bombs_are_refused_from_the_header_and_the_limit_is_configurable(corpus, tmp_path) -> None:
    folder, _, _ = corpus
    for name in ("bomb.png", "bomb16.png", "bomb-screen.gif", "bomb.tif"):
        with pytest.raises(RestoreKitError, match="over the limit of 1 megapixels"):
            read_image(folder / name, max_pixels=1_000_000)
    Image.fromarray(RGB).save(tmp_path / "small.png")
    with pytest.raises(RestoreKitError, match="120 pixels|megapixels"):
        read_image(tmp_path / "small.png", max_pixels=119)
    assert read_image(tmp_path / "small.png", max_pixels=120).width == 10
    assert read_image(tmp_path / "small.png", max_pixels=None).width == 10


def test_each_good_file_reads(corpus) -> None:
    folder, good, _ = corpus
    for name, expect in good.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            img = read_image(folder / name)
        assert (img.height, img.width) == expect["size"], name
        assert img.channels in (1, 3) and np.isfinite(img.pixels).all() and 0 <= img.pixels.min() <= img.pixels.max() <= 1
        assert img.bit_depth == expect.get("bit_depth", 8), name
        assert (img.alpha is not None) == expect.get("alpha", False), name
        if "warns" in expect:
            assert any(name in str(w.message) and expect["warns"] in str(w.message) for w in caught), name
        else:
            assert not caught, (name, [str(w.message) for w in caught])


# --------------------------------------------------------------------------- the CLI over the whole folder


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model(TINY, channels=3)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.01)  # near identity
    return save_checkpoint(tmp_path_factory.mktemp("w") / "tiny.safetensors", model)


def test_batch_restores_the_good_reports_each_bad_and_exits_1(corpus, tiny_weights, tmp_path, capsys) -> None:
    folder, good, bad = corpus
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["restore", str(folder), "-o", str(out), "--weights", str(tiny_weights)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "Traceback" not in captured.err
    lines = captured.out.strip().splitlines()
    assert lines[-1].startswith(f"restored {len(good)}, skipped 0, failed {len(bad)} ")
    notes = [line for line in lines[:-1] if "(lossless;" in line]
    assert notes == ["cmyk.jpg → cmyk.png, and 3 more likewise (lossless; JPEG inputs are not re-compressed)"], notes
    failures = {Path(line.split(": ", 1)[0]).name: line for line in lines[:-1] if line not in notes}
    assert set(failures) == set(bad)
    for name, reason in bad.items():
        line = failures[name]
        assert reason in line, line
        assert line.count(str(folder / name)) == 1, f"the file is named once: {line}"
    # the good files: restored, same size, alpha and bit depth kept; the bad ones: no output
    # GIF cannot be written and JPEG is not re-compressed: both become PNG
    outputs = {name: str(Path(name).with_suffix(".png")) if Path(name).suffix in (".gif", ".jpg") else name
               for name in good}
    assert sorted(p.name for p in out.iterdir()) == sorted(outputs.values()), "outputs for good files only, no temporaries"
    for name, expect in good.items():
        img = read_image(out / outputs[name])
        assert (img.height, img.width) == expect["size"], name
        if name.endswith((".png", ".tif")):
            assert (img.alpha is not None) == expect.get("alpha", False), name
            assert img.bit_depth == expect.get("bit_depth", 8), name
    messages = [str(w.message) for w in caught]
    for name in ("animated.gif", "animated-apng.png"):
        assert f"{folder / name}: has 2 frames; using the first" in messages


def test_single_bad_file_exits_non_zero_and_writes_nothing(corpus, tiny_weights, tmp_path, capsys) -> None:
    folder, _, _ = corpus
    code = main(["restore", str(folder / "truncated.png"), "-o", str(tmp_path / "o.png"), "--weights", str(tiny_weights)])
    out = capsys.readouterr().out
    assert code == 1 and "truncated.png: cannot decode image, the file is truncated or corrupt" in out
    assert not list(tmp_path.iterdir())


def test_max_pixels_option_for_restore_and_eval(tiny_weights, tmp_path, capsys) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(RGB).save(folder / "a.png")  # 120 pixels
    Image.fromarray(RGB[:5, :5]).save(folder / "b.png")  # 25 pixels
    out = tmp_path / "out"
    code = main(["restore", str(folder), "-o", str(out), "--weights", str(tiny_weights), "--max-pixels", "100"])
    stdout = capsys.readouterr().out
    assert code == 1 and "a.png: image is 10x12" in stdout and "over the limit" in stdout and "restored 1," in stdout
    code = main(["restore", str(folder), "-o", str(out), "--weights", str(tiny_weights), "--max-pixels", "0",
                 "--skip-existing"])
    assert code == 0 and "restored 1, skipped 1, failed 0" in capsys.readouterr().out  # 0: no limit
    evalset = tmp_path / "evalset"
    evalset.mkdir()
    Image.fromarray(np.tile(RGB[:, :, 0], (2, 2))[:20, :20]).save(evalset / "big.png")  # 400 pixels
    Image.fromarray(RGB[:12, :10, 1]).resize((12, 12)).save(evalset / "small.png")  # 144 pixels (SSIM needs 11)
    code = main(["eval", "--weights", str(tiny_weights), "--data", str(evalset), "--sigma", "25", "--max-pixels", "200"])
    err = capsys.readouterr().err
    assert code != 0 and "big.png: image is 20x20" in err and "over the limit" in err
    assert err.strip().splitlines()[-1].startswith("restorekit eval: error:") and "Traceback" not in err
    assert main(["eval", "--weights", str(tiny_weights), "--data", str(evalset), "--sigma", "25", "--max-pixels", "400"]) == 0
    capsys.readouterr()
    code = main(["restore", str(folder), "-o", str(tmp_path / "o2"), "--weights", str(tiny_weights), "--max-pixels", "-3"])
    err = capsys.readouterr().err
    assert code != 0 and "--max-pixels" in err and err.count("\n") == 1 and not (tmp_path / "o2").exists()
