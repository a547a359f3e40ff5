"""Property-based tests (hypothesis): the image reader (round trips; corrupted files either decode or
raise RestoreKitError, never another exception), the tiling and padding arithmetic (every pixel covered,
sizes preserved) and restore_tensor's output for random small sizes."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from restorekit.errors import RestoreKitError
from restorekit.inference import InferenceOptions, pad_to_size, plan_tiles, restore_tensor, round_up, tile_starts
from restorekit.io import read_image, write_image
from restorekit.models.dncnn import DnCNN
from restorekit.models.registry import create_model, register_model

_BASE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None)


def examples(n: int) -> settings:
    """Seeded (derandomised) runs of ``n`` examples, without a deadline: the machine is shared."""
    return settings(_BASE, max_examples=n)


# --------------------------------------------------------------------------- tiny models


def _tiny_dncnn(channels: int = 1) -> DnCNN:
    return DnCNN(channels, depth=3, features=8, batch_norm=False, bias=True)


class _Identity(nn.Module):
    """Returns its input, ``scale`` times larger (nearest); refuses sizes that are not a multiple of
    ``multiple``, so that the inference path's padding is checked."""

    def __init__(self, channels: int = 1, multiple: int = 1, scale: int = 1) -> None:
        super().__init__()
        self.multiple, self.scale = multiple, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise AssertionError(f"input {tuple(x.shape)} not padded to a multiple of {self.multiple}")
        return x.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1) if self.scale > 1 else x * 1


def _register(name: str, factory, **meta) -> None:
    try:
        register_model(name, family="test", task=meta.pop("task", "denoise"), channels=meta.pop("channels", 1),
                       **meta)(factory)
    except ValueError:  # registered by another test module
        pass


try:
    register_model("rk-tiny-dncnn", family="dncnn", task="denoise", channels=1)(_tiny_dncnn)
except ValueError:
    pass
_register("rk-identity-m1", lambda channels=1: _Identity(channels, 1))
_register("rk-identity-m8", lambda channels=1: _Identity(channels, 8), size_multiple=8)
_register("rk-identity-x2", lambda channels=1: _Identity(channels, 4, 2), size_multiple=4, scale=2, task="sr")


# --------------------------------------------------------------------------- the image reader


@st.composite
def images(draw):
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    c = draw(st.sampled_from([1, 2, 3, 4]))  # 2 and 4: with alpha
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    top = np.iinfo(dtype).max
    values = draw(st.lists(st.integers(0, int(top)), min_size=h * w * c, max_size=h * w * c))
    return np.array(values, dtype=dtype).reshape(h, w, c)


@examples(30)
@given(arr=images(), ext=st.sampled_from([".png", ".tif", ".tiff"]))
def test_png_and_tiff_round_trip_exactly(arr, ext) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"x{ext}"
        write_image(path, arr)
        img = read_image(path)
    top = float(np.iinfo(arr.dtype).max)
    base = 1 if arr.shape[2] in (1, 2) else 3
    assert img.bit_depth == (16 if arr.dtype == np.uint16 else 8)
    np.testing.assert_array_equal(np.rint(img.pixels * top), arr[:, :, :base].astype(np.float64))
    if arr.shape[2] in (2, 4):
        assert img.alpha is not None
        np.testing.assert_array_equal(np.rint(img.alpha * top), arr[:, :, -1].astype(np.float64))
    else:
        assert img.alpha is None


def _valid_files() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, depth, c in (("p8.png", 8, 3), ("p16.png", 16, 3), ("g16.png", 16, 1), ("t16.tif", 16, 3), ("t8.tif", 8, 1)):
            path = Path(d) / name
            write_image(path, rng.random((9, 7, c)).astype(np.float32), bit_depth=depth)
            out[name] = path.read_bytes()
        # an interlaced 16-bit PNG, decoded by restorekit's own codec (Adam7 passes)
        from PIL import Image

        Image.fromarray((rng.random((9, 7)) * 65535).astype(np.uint16)).save(Path(d) / "i.png", interlace=1)
        out["interlaced.png"] = (Path(d) / "i.png").read_bytes()
    return out


VALID = _valid_files()


@st.composite
def corruptions(draw):
    name = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[name])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[i:]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[i:i + draw(st.integers(1, 16))]
    return name, bytes(data)


@examples(300)
@given(case=corruptions())
def test_corrupted_files_decode_or_raise_restorekit_error(case) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                img = read_image(path, max_pixels=10_000)
            except RestoreKitError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
                return
    assert img.pixels.dtype == np.float32 and img.pixels.ndim == 3 and img.channels in (1, 3)
    assert np.isfinite(img.pixels).all() and 0.0 <= img.pixels.min() and img.pixels.max() <= 1.0


# --------------------------------------------------------------------------- tiling and padding arithmetic


@examples(200)
@given(length=st.integers(1, 3000), tile=st.integers(1, 600), data=st.data())
def test_tile_starts_cover_every_pixel_with_the_overlap(length, tile, data) -> None:
    overlap = data.draw(st.integers(0, tile // 2))
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and list(starts) == sorted(set(starts))
    if length <= tile:
        assert starts == (0,)
        return
    assert starts[-1] + tile == length, "the last tile ends at the border; no tile sticks out"
    for a, b in zip(starts, starts[1:]):
        assert b - a <= tile - overlap, "neighbours overlap by at least the overlap: no gap"


@examples(200)
@given(h=st.integers(1, 700), w=st.integers(1, 700), multiple=st.sampled_from([1, 2, 4, 8, 16]),
       scale=st.sampled_from([1, 2, 3, 4]), tiled=st.booleans(), data=st.data())
def test_plan_tiles_covers_the_image_in_multiples(h, w, multiple, scale, tiled, data) -> None:
    tile = data.draw(st.integers(multiple, 256)) if tiled else None
    effective = tile // multiple * multiple if tile else None
    overlap = data.draw(st.integers(0, effective // 2)) if tiled else 0
    plan = plan_tiles(h, w, tile=tile, overlap=overlap, multiple=multiple, scale=scale)
    assert plan.out_size == (h * scale, w * scale)
    assert plan.tile_h % multiple == 0 and plan.tile_w % multiple == 0
    if tile is None:
        assert (plan.tile_h, plan.tile_w) == (round_up(h, multiple), round_up(w, multiple)) and plan.count == 1
    else:
        assert plan.tile_h <= max(effective, round_up(h, multiple)) and plan.tile_w <= max(effective, round_up(w, multiple))
    for size, tile_size, starts in ((h, plan.tile_h, plan.ys), (w, plan.tile_w, plan.xs)):
        covered = np.zeros(size, dtype=bool)
        for s in starts:
            assert 0 <= s < size
            covered[s:s + tile_size] = True
        assert covered.all(), "every pixel lies in some tile"
        assert tile_size >= size or max(starts) + tile_size == size


@examples(100)
@given(h=st.integers(1, 40), w=st.integers(1, 40), th=st.integers(1, 48), tw=st.integers(1, 48))
def test_pad_to_size_keeps_the_image_and_falls_back_to_replication(h, w, th, tw) -> None:
    x = torch.rand(1, 2, h, w)
    th, tw = max(th, h), max(tw, w)
    y = pad_to_size(x, th, tw)  # reflection cannot pad by more than the size - 1: replication then
    assert y.shape == (1, 2, th, tw)
    assert torch.equal(y[..., :h, :w], x)
    assert torch.isin(y, x).all(), "padding only repeats pixels of the image"


# --------------------------------------------------------------------------- restore_tensor


@examples(40)
@given(h=st.integers(1, 40), w=st.integers(1, 40), n=st.integers(1, 2),
       name=st.sampled_from(["rk-identity-m1", "rk-identity-m8", "rk-identity-x2"]),
       tile=st.one_of(st.none(), st.integers(8, 32)), data=st.data())
def test_restore_tensor_keeps_size_and_pixels_through_padding_and_tiles(h, w, n, name, tile, data) -> None:
    model = create_model(name)
    multiple, scale = model.info.size_multiple, model.info.scale
    overlap = None
    if tile is not None:
        tile = max(tile, multiple)
        overlap = data.draw(st.integers(0, (tile // multiple * multiple) // 2))
    x = torch.rand(n, 1, h, w)
    y = restore_tensor(model, x, InferenceOptions(tile=tile, overlap=overlap, device="cpu"))
    assert y.shape == (n, 1, h * scale, w * scale)
    expected = x.repeat_interleave(scale, -2).repeat_interleave(scale, -1) if scale > 1 else x
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)  # blending weights sum to one everywhere


TINY_MODEL = None


def _tiny() -> nn.Module:
    global TINY_MODEL
    if TINY_MODEL is None:
        torch.manual_seed(0)
        TINY_MODEL = create_model("rk-tiny-dncnn").eval()
    return TINY_MODEL


@examples(40)
@given(h=st.integers(1, 48), w=st.integers(1, 48), tile=st.one_of(st.none(), st.integers(18, 40)))
def test_restore_tensor_of_a_tiny_dncnn_any_size(h, w, tile) -> None:
    model = _tiny()
    x = torch.rand(1, 1, h, w)
    whole = restore_tensor(model, x, InferenceOptions(device="cpu"))
    assert whole.shape == x.shape and torch.isfinite(whole).all() and 0 <= whole.min() and whole.max() <= 1
    if tile is not None:
        # the automatic overlap (3 × receptive radius, 9 px here) makes tiles match the whole image
        tiled = restore_tensor(model, x, InferenceOptions(device="cpu", tile=tile))
        torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
