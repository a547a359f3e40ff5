"""Tests of the synthetic degradations: determinism, invariants, and bicubic resizing against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from restorekit.degradations.blur import (apply_blur, gaussian_blur, gaussian_kernel, motion_blur,
                                          random_gaussian_blur, random_motion_kernel)
from restorekit.degradations.haze import depth_proxy, haze
from restorekit.degradations.jpeg import jpeg_compress
from restorekit.degradations.rain import rain_streaks, raindrops, streak_kernel
from restorekit.degradations.registry import DEGRADATIONS, degrade, get_degradation
from restorekit.degradations.sr import bicubic_downsample, bicubic_upsample, imresize, resize_matrix
from restorekit.errors import RestoreKitError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def scene(channels: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth image with edges, in [0.05, 0.95] so screen/haze changes are visible everywhere."""
    g = gen(seed)
    coarse = torch.rand(1, channels, 8, 8, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    img[:, size // 4: size // 2, size // 4: size // 2] = 0.9
    return 0.05 + 0.9 * img.clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


RANDOM_FNS = {
    "motion_blur": lambda img, g: motion_blur(img, generator=g, kernel_size=15),
    "random_gaussian_blur": lambda img, g: random_gaussian_blur(img, generator=g),
    "haze": lambda img, g: haze(img, generator=g),
    "rain_streaks": lambda img, g: rain_streaks(img, generator=g),
    "raindrops": lambda img, g: raindrops(img, generator=g),
}


# --- common behaviour -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(RANDOM_FNS))
@pytest.mark.parametrize("channels", [1, 3])
def test_seeded_determinism_and_shapes(name: str, channels: int) -> None:
    fn = RANDOM_FNS[name]
    img = scene(channels)
    a, b, c = fn(img, gen(1)), fn(img, gen(1)), fn(img, gen(2))
    assert a.shape == img.shape and a.dtype == img.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    batch = torch.stack([img, scene(channels, seed=5)])
    out = fn(batch, gen(1))
    assert out.shape == batch.shape
    assert torch.equal(fn(batch, gen(1)), out)


@pytest.mark.parametrize("name", sorted(RANDOM_FNS))
def test_arguments_are_validated(name: str) -> None:
    fn = RANDOM_FNS[name]
    with pytest.raises(RestoreKitError, match="C×H×W"):
        fn(torch.rand(16, 16), gen())
    with pytest.raises(RestoreKitError, match="floating-point"):
        fn(torch.zeros(3, 16, 16, dtype=torch.uint8), gen())
    with pytest.raises(RestoreKitError, match="generator"):
        fn(scene(), None)


def test_range_arguments_are_validated() -> None:
    img = scene()
    with pytest.raises(RestoreKitError, match="beta_range"):
        haze(img, generator=gen(), beta_range=(1.0, 0.5))
    with pytest.raises(RestoreKitError, match="airlight_range"):
        haze(img, generator=gen(), airlight_range=(0.5, 1.5))
    with pytest.raises(RestoreKitError, match="density_range"):
        rain_streaks(img, generator=gen(), density_range=(-0.1, 0.1))
    with pytest.raises(RestoreKitError, match="layers"):
        rain_streaks(img, generator=gen(), layers=(0, 2))
    with pytest.raises(RestoreKitError, match="fraction"):
        raindrops(img, generator=gen(), radius_range=(0.0, 0.1))
    with pytest.raises(RestoreKitError, match="radius_range"):
        raindrops(img, generator=gen(), radius_range=(5, 15))
    with pytest.raises(RestoreKitError, match="odd"):
        random_motion_kernel(30, generator=gen())
    with pytest.raises(RestoreKitError, match="length_range"):
        random_motion_kernel(15, generator=gen(), length_range=(0.0, 5.0))


# --- blur -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [7, 15, 31])
def test_motion_kernels_are_normalised_nontrivial_psfs(size: int) -> None:
    g = gen(3)
    for _ in range(8):
        k = random_motion_kernel(size, generator=g)
        assert k.shape == (size, size) and k.dtype == torch.float32
        assert (k >= 0).all()
        assert abs(float(k.sum()) - 1) < 1e-5
        assert float(k.max()) < 0.9 and int((k > 1e-4).sum()) >= 3  # not a delta
        # centred on its centre of mass (within the slack the borders leave)
        r = torch.arange(size, dtype=torch.float32)
        cy, cx = float((k.sum(1) * r).sum()), float((k.sum(0) * r).sum())
        assert abs(cy - size // 2) < size / 4 and abs(cx - size // 2) < size / 4


def test_motion_kernel_seeding_and_straight_line() -> None:
    a = random_motion_kernel(21, generator=gen(7))
    assert torch.equal(a, random_motion_kernel(21, generator=gen(7)))
    assert not torch.equal(a, random_motion_kernel(21, generator=gen(8)))
    # no shake and no jerks: a straight segment of the requested length through the centre
    k = random_motion_kernel(21, generator=gen(1), length_range=(10, 10), shake_range=(0, 0), jerks=0)
    ys, xs = torch.nonzero(k > 1e-3, as_tuple=True)
    pts = torch.stack([xs, ys], 1).float()
    pts -= pts.mean(0)
    spread = torch.linalg.svdvals(pts)
    assert float(spread[1] / spread[0]) < 0.2  # one dominant direction
    extent = float((pts @ torch.linalg.svd(pts).Vh[0]).abs().max()) * 2
    assert 8 <= extent <= 12


def test_motion_kernel_fits_when_path_is_long() -> None:
    k = random_motion_kernel(7, generator=gen(0), length_range=(40, 40))
    assert k.shape == (7, 7) and abs(float(k.sum()) - 1) < 1e-5


@pytest.mark.parametrize("shape", [(1, 20, 24), (3, 20, 24), (2, 3, 20, 24)])
def test_delta_kernel_is_identity(shape: tuple[int, ...]) -> None:
    img = torch.rand(shape, generator=gen())
    delta = torch.zeros(9, 9)
    delta[4, 4] = 1
    assert torch.allclose(apply_blur(img, delta), img, atol=1e-6)


def test_apply_blur_convolves_and_pads_by_reflection() -> None:
    img = torch.zeros(1, 9, 9)
    img[0, 4, 4] = 1
    k = torch.zeros(3, 3)
    k[1, 2] = 1  # a PSF to the right of centre smears each point to the right
    out = apply_blur(img, k)
    assert float(out[0, 4, 5]) == 1 and float(out.sum()) == 1
    const = torch.full((3, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(const, 2.0), const, atol=1e-6)
    assert torch.allclose(apply_blur(const, random_motion_kernel(15, generator=gen())), const, atol=1e-6)
    tiny = torch.rand(1, 3, 3, generator=gen())  # smaller than the kernel radius: replicate padding
    assert apply_blur(tiny, gaussian_kernel(1.5)).shape == tiny.shape
    with pytest.raises(RestoreKitError, match="odd"):
        apply_blur(img, torch.ones(4, 4) / 16)
    with pytest.raises(RestoreKitError, match="batch"):
        apply_blur(torch.rand(2, 1, 8, 8), torch.ones(3, 3, 3) / 9)


def test_gaussian_kernel() -> None:
    k = gaussian_kernel(1.5)
    assert k.shape == (11, 11) and abs(float(k.sum()) - 1) < 1e-6
    assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.T)
    assert float(gaussian_kernel(0.0, 3)[1, 1]) == 1
    with pytest.raises(RestoreKitError):
        gaussian_kernel(-1.0)


def test_motion_blur_uses_one_kernel_per_image() -> None:
    batch = torch.stack([scene(), scene()])
    out, kernels = motion_blur(batch, generator=gen(4), kernel_size=15, return_kernel=True)
    assert kernels.shape == (2, 15, 15) and not torch.equal(kernels[0], kernels[1])
    assert torch.allclose(out[1], apply_blur(batch[1], kernels[1]), atol=1e-6)
    assert psnr(out[0], batch[0]) < 45


# --- haze -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_haze_model(channels: int) -> None:
    img = scene(channels)
    assert torch.allclose(haze(img, generator=gen(), beta_range=(0, 0)), img)
    out, t, a = haze(img, generator=gen(3), return_params=True)
    assert t.shape == (1, 64, 64) and a.shape == (1, 1, 1)
    assert 0.7 <= float(a) <= 1.0 and (t > 0).all() and (t <= 1).all()
    assert torch.allclose(out, img * t + a * (1 - t), atol=1e-6)
    lo, hi = torch.minimum(img, a), torch.maximum(img, a)
    assert (out >= lo - 1e-6).all() and (out <= hi + 1e-6).all()
    assert psnr(out, img) < 30


def test_haze_with_given_depth() -> None:
    img = scene()
    depth = torch.linspace(0, 1, 64).view(64, 1).expand(64, 64)
    out, t, _ = haze(img, generator=gen(), beta_range=(1.0, 1.0), depth=depth, return_params=True)
    assert torch.allclose(t[0], torch.exp(-depth))
    assert torch.allclose(out[:, 0], img[:, 0])  # depth 0: haze-free
    with pytest.raises(RestoreKitError, match="depth"):
        haze(img, generator=gen(), depth=torch.ones(32, 32))
    with pytest.raises(RestoreKitError, match=">= 0"):
        haze(img, generator=gen(), depth=-torch.ones(64, 64))


def test_depth_proxy_is_far_at_the_top() -> None:
    d = depth_proxy(torch.full((3, 48, 48), 0.5), generator=gen())
    assert d.shape == (1, 48, 48) and float(d.min()) >= 0 and float(d.max()) <= 1
    assert float(d[:, :8].mean()) > float(d[:, -8:].mean())


# --- rain -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [rain_streaks, raindrops])
@pytest.mark.parametrize("channels", [1, 3])
def test_rain_stays_in_range_and_mask_marks_change(fn, channels: int) -> None:
    img = scene(channels)
    out, mask = fn(img, generator=gen(6), return_mask=True)
    assert mask.shape == (1, 64, 64)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    changed = (out - img).abs().amax(0) > 1e-6
    assert changed.float().mean() > 0.005
    assert not changed[mask[0] == 0].any()  # nothing changes outside the mask
    assert changed[mask[0] > 0.5].float().mean() > 0.95  # and where it is strong, the image did change
    assert torch.equal(fn(img, generator=gen(6)), out)


def test_rain_streaks_brighten_and_follow_parameters() -> None:
    img = scene()
    out, mask = rain_streaks(img, generator=gen(), return_mask=True)
    assert (out >= img - 1e-6).all()  # screen blending only adds light
    sparse = rain_streaks(img, generator=gen(), density_range=(0.001, 0.001), layers=(1, 1), return_mask=True)[1]
    dense = rain_streaks(img, generator=gen(), density_range=(0.03, 0.03), layers=(1, 1), return_mask=True)[1]
    assert float(dense.mean()) > 3 * float(sparse.mean())
    none = rain_streaks(img, generator=gen(), density_range=(0, 0))
    assert torch.allclose(none, img)


def test_streak_kernel_orientation() -> None:
    k = streak_kernel(15, 0.0)
    assert float(k.max()) == pytest.approx(1.0)
    cols = k.sum(0)
    c = k.shape[1] // 2
    assert int(cols.argmax()) == c and float(cols[c - 1: c + 2].sum()) > 0.95 * float(cols.sum())
    assert float(k[:, c].sum()) > 12  # vertical: about 15 pixels long
    tilted = streak_kernel(15, 30.0)  # top leans right: the upper half's mass sits right of centre
    c = tilted.shape[0] // 2
    r = torch.arange(tilted.shape[1], dtype=torch.float32)
    top = tilted[:c]
    assert float((top.sum(0) * r).sum() / top.sum()) > c + 1


def test_raindrops_count_and_zero_drops() -> None:
    img = scene()
    assert torch.equal(raindrops(img, generator=gen(), count_range=(0, 0)), img)
    few = raindrops(img, generator=gen(1), count_range=(2, 2), return_mask=True)[1]
    many = raindrops(img, generator=gen(1), count_range=(30, 30), return_mask=True)[1]
    assert float(many.mean()) > float(few.mean())


# --- jpeg -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_quality_orders_psnr(channels: int) -> None:
    img = scene(channels, size=64)
    img = (img + 0.05 * torch.rand(img.shape, generator=gen())).clamp(0, 1)  # texture for the coder to lose
    scores = [psnr(jpeg_compress(img, q), img) for q in (5, 10, 30, 90)]
    assert scores[0] < scores[1] < scores[3] and scores[2] < scores[3]
    assert scores[3] > 30
    out = jpeg_compress(img, 50)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert torch.equal(out * 255, (out * 255).round())


def test_jpeg_batch_and_validation() -> None:
    batch = torch.stack([scene(), scene(seed=3)])
    out = jpeg_compress(batch, [10, 90])
    assert torch.equal(out[0], jpeg_compress(batch[0], 10)) and torch.equal(out[1], jpeg_compress(batch[1], 90))
    for bad in (0, 101, 50.5, True):
        with pytest.raises(RestoreKitError, match="quality"):
            jpeg_compress(batch[0], bad)  # type: ignore[arg-type]
    with pytest.raises(RestoreKitError, match="channels"):
        jpeg_compress(torch.rand(2, 8, 8), 50)
    with pytest.raises(RestoreKitError, match="batch"):
        jpeg_compress(batch, [10])


# --- bicubic imresize -----------------------------------------------------------------------------------------

def _cubic(x: float) -> float:
    a = abs(x)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _resize_1d_reference(v: np.ndarray, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """A direct, loop-by-loop transcription of MATLAB's imresize contributions for one dimension."""
    n = len(v)
    shrink = scale < 1 and antialias
    width = 4 / scale if shrink else 4.0
    out = np.zeros(out_len)
    for i in range(1, out_len + 1):
        centre = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(centre - width / 2)
        total, acc = 0.0, 0.0
        for j in range(left, left + math.ceil(width) + 2):
            wgt = scale * _cubic((centre - j) * scale) if shrink else _cubic(centre - j)
            k = (j - 1) % (2 * n)  # symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...
            src = k if k < n else 2 * n - 1 - k
            acc += wgt * v[src]
            total += wgt
        out[i - 1] = acc / total
    return out


def _imresize_reference(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    tmp = np.stack([_resize_1d_reference(img[:, j], oh, scale) for j in range(w)], 1)
    return np.stack([_resize_1d_reference(tmp[i], ow, scale) for i in range(oh)], 0)


def test_imresize_hand_computed_values() -> None:
    # Down by 2 with antialiasing: kernel 8 wide, weights cubic(d/2)/2, mirrored borders:
    # out1 = 0.546875·a + 0.3984375·b + 0.1015625·c − 0.046875·d
    x = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64).repeat(4, 1)[None]
    out = imresize(x, 0.5)
    assert out.shape == (1, 2, 2)
    assert torch.allclose(out, torch.tensor([[0.4609375, 2.5390625]] * 2, dtype=torch.float64)[None], atol=1e-12)
    # Up by 2 from [0, 1]: out = [-0.09375, 0.203125, 0.796875, 1.09375] (cubic overshoot at the edges)
    up = imresize(torch.tensor([[[0.0, 1.0]]], dtype=torch.float64), 2)
    assert torch.allclose(up[0, 0], torch.tensor([-0.09375, 0.203125, 0.796875, 1.09375], dtype=torch.float64))
    assert torch.allclose(resize_matrix(4, 2, 0.5)[0],
                          torch.tensor([0.546875, 0.3984375, 0.1015625, -0.046875], dtype=torch.float64))


@pytest.mark.parametrize("scale", [0.5, 0.25, 1 / 3, 0.7, 2.0, 3.0, 1.5])
def test_imresize_matches_reference(scale: float) -> None:
    img = torch.rand(13, 17, generator=gen(), dtype=torch.float64)
    ours = imresize(img[None], scale)[0].numpy()
    ref = _imresize_reference(img.numpy(), scale)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_imresize_matches_pillow_away_from_borders(factor: int) -> None:
    # Pillow's BICUBIC is the same a = −0.5 kernel with the same antialiasing; only borders differ.
    img = torch.rand(48, 48, generator=gen(1))
    ours = bicubic_downsample(img[None], factor)[0].numpy()
    pil = np.asarray(Image.fromarray(img.numpy()).resize((48 // factor,) * 2, Image.Resampling.BICUBIC))
    m = 3
    np.testing.assert_allclose(ours[m:-m, m:-m], pil[m:-m, m:-m], atol=1e-5)
    ours_up = bicubic_upsample(img[None], factor)[0].numpy()
    pil_up = np.asarray(Image.fromarray(img.numpy()).resize((48 * factor,) * 2, Image.Resampling.BICUBIC))
    m = 3 * factor
    np.testing.assert_allclose(ours_up[m:-m, m:-m], pil_up[m:-m, m:-m], atol=1e-5)


def test_imresize_invariants() -> None:
    img = torch.rand(2, 3, 20, 30, generator=gen())
    assert torch.equal(imresize(img, 1.0), img)
    const = torch.full((3, 20, 30), 0.37)
    for scale in (0.25, 0.5, 1 / 3, 2.0, 3.0):
        out = imresize(const, scale)
        assert torch.allclose(out, torch.full_like(out, 0.37), atol=1e-6)
    assert bicubic_downsample(img, 4).shape == (2, 3, 5, 8)  # ceil, as MATLAB
    assert bicubic_upsample(img[0], 2).shape == (3, 40, 60)
    assert imresize(img, size=(10, 45)).shape == (2, 3, 10, 45)
    assert imresize(img, (0.5, 2.0)).shape == (2, 3, 10, 60)
    no_aa = imresize(img, 0.5, antialias=False)
    assert no_aa.shape == (2, 3, 10, 15) and not torch.allclose(no_aa, imresize(img, 0.5))
    down_up = bicubic_upsample(bicubic_downsample(scene(), 2), 2)
    assert psnr(down_up, scene()) > 25
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(RestoreKitError, match="scale"):
            imresize(img, bad)
    with pytest.raises(RestoreKitError, match="factor"):
        bicubic_downsample(img, 2.5)  # type: ignore[arg-type]
    with pytest.raises(RestoreKitError, match="exactly one"):
        imresize(img)


# --- registry -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_registered_degradation_runs_seeded(name: str, channels: int) -> None:
    img = scene(channels, size=32)
    a = degrade(name, img, gen(1))
    assert torch.equal(a, degrade(name, img, gen(1)))
    assert isinstance(a, torch.Tensor) and a.shape[:1] == img.shape[:1]
    assert not torch.allclose(a, img) if a.shape == img.shape else a.shape[-1] < img.shape[-1]
    assert get_degradation(name) is DEGRADATIONS[name]
    batch = torch.stack([img, img])
    assert degrade(name, batch, gen(1)).shape[:2] == batch.shape[:2]


def test_registry_errors() -> None:
    with pytest.raises(RestoreKitError, match="did you mean 'motion-blur'"):
        get_degradation("motion_blurr")
    with pytest.raises(RestoreKitError, match="unknown degradation"):
        degrade("snow", scene(), gen())
    with pytest.raises(RestoreKitError, match="did you mean 'beta_range'"):
        degrade("haze", scene(), gen(), betarange=(1, 2))
    with pytest.raises(RestoreKitError, match="no parameter 'return_mask'"):
        degrade("rain-streaks", scene(), gen(), return_mask=True)
    with pytest.raises(RestoreKitError, match="only one"):
        degrade("gaussian-noise", scene(), gen(), sigma=25, sigma_range=(0, 50))


def test_gaussian_noise_sigma_modes() -> None:
    batch = torch.full((12, 1, 64, 64), 0.5)

    def sigmas(**params) -> list[float]:
        return [float(s) * 255 for s in (degrade("gaussian-noise", batch, gen(2), **params) - batch).std((1, 2, 3))]

    assert all(abs(s - 25) < 2 for s in sigmas(sigma=25))
    picked = sigmas(sigma_choices=[30, 50, 70])
    assert all(min(abs(s - c) for c in (30, 50, 70)) < 4 for s in picked) and len({round(s, -1) for s in picked}) > 1
    drawn = sigmas(sigma_range=(10, 60))
    assert all(8 < s < 63 for s in drawn) and max(drawn) - min(drawn) > 10
    clipped = degrade("gaussian-noise", batch, gen(), sigma=50, clip=True)
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1


def test_jpeg_and_bicubic_entries() -> None:
    img = scene()
    assert torch.equal(degrade("jpeg", img, gen(), quality=20), jpeg_compress(img, 20))
    assert degrade("bicubic-down", img, gen(), factor=2).shape == (3, 32, 32)
    with pytest.raises(RestoreKitError, match="quality_range"):
        degrade("jpeg", img, gen(), quality_range=(0, 50))


def test_gaussian_noise_eight_bit_fraction() -> None:
    batch = torch.full((64, 1, 16, 16), 0.5)
    float_noisy = degrade("gaussian-noise", batch, gen(3), sigma=25)
    assert torch.equal(degrade("gaussian-noise", batch, gen(3), sigma=25, eight_bit=0.0), float_noisy)
    quantised = degrade("gaussian-noise", batch, gen(3), sigma=25, eight_bit=1.0)
    assert float(quantised.min()) >= 0 and float(quantised.max()) <= 1
    assert torch.equal(quantised * 255, (quantised * 255).round())
    assert (quantised - float_noisy).abs().max() <= 0.5 / 255 + 1e-6  # rounding only: the same draw
    half = degrade("gaussian-noise", batch, gen(3), sigma=25, eight_bit=0.5)
    on_grid = [bool(torch.equal(img * 255, (img * 255).round())) for img in half]
    assert 16 < sum(on_grid) < 48
    with pytest.raises(RestoreKitError, match="eight_bit"):
        degrade("gaussian-noise", batch, gen(), sigma=25, eight_bit=1.5)
