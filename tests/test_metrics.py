"""PSNR/SSIM against scikit-image, scipy and independently written colour formulas."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from restorekit.errors import RestoreKitError
from restorekit.metrics import (
    PROTOCOLS,
    MetricProtocol,
    default_win_size,
    list_protocols,
    psnr,
    ssim,
)

skm = pytest.importorskip("skimage.metrics")
ndi = pytest.importorskip("scipy.ndimage")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DENOISE = SHARED / "data" / "denoise"


def _synthetic(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    """Smooth gradients plus texture in [0, 1], for machines without ../shared."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    planes = []
    for c in range(channels):
        base = 0.5 + 0.3 * np.sin(6 * xx + 2 * c) * np.cos(4 * yy - c)
        texture = ndi.gaussian_filter(rng.standard_normal((h, w)), 1.0) * 0.15
        planes.append(np.clip(base + 0.2 * (xx - yy) + texture, 0, 1))
    img = np.stack(planes, axis=-1)
    return img[..., 0] if channels == 1 else img


def _load(folder: Path, names: list[str], mode: str) -> list[np.ndarray] | None:
    if not folder.is_dir():
        return None
    from PIL import Image

    out = []
    for name in names:
        with Image.open(folder / name) as im:
            out.append(np.asarray(im.convert(mode), dtype=np.float64) / 255.0)
    return out


def gray_images() -> list[np.ndarray]:
    """Set12 images (real data) when ../shared exists, else synthetic ones."""
    imgs = _load(DENOISE / "Set12", ["01.png", "05.png"], "L")
    return imgs if imgs else [_synthetic(96, 80, 1, s) for s in (1, 2)]


def rgb_images() -> list[np.ndarray]:
    """Two CBSD68 images cropped to 200x240 when ../shared exists, else synthetic ones."""
    folder = DENOISE / "CBSD68"
    if folder.is_dir():
        names = sorted(p.name for p in folder.glob("*.png"))[:2]
        imgs = _load(folder, names, "RGB")
        return [im[:200, :240] for im in imgs]
    return [_synthetic(90, 70, 3, s) for s in (3, 4)]


def noisy(img: np.ndarray, sigma: float, seed: int, clip: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img + rng.normal(0.0, sigma / 255.0, img.shape)
    return np.clip(out, 0, 1) if clip else out


# ----------------------------------------------------------------- agreement with skimage


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_psnr_matches_skimage(scale: float) -> None:
    for i, clean in enumerate(gray_images() + rgb_images()):
        a, b = clean * scale, noisy(clean, 20, seed=i) * scale
        expected = skm.peak_signal_noise_ratio(a, b, data_range=scale)
        got = float(psnr(a, b, data_range=scale))
        assert abs(got - expected) < 1e-4
        t = torch.from_numpy(a).permute(2, 0, 1) if a.ndim == 3 else torch.from_numpy(a)
        u = torch.from_numpy(b).permute(2, 0, 1) if b.ndim == 3 else torch.from_numpy(b)
        assert abs(float(psnr(t, u, data_range=scale)) - expected) < 1e-4


SK_CONVENTIONS = [
    # (gaussian_weights, win_size, sigma, use_sample_covariance)
    (False, None, 1.5, True),  # skimage's default, DuRN's compare_ssim
    (False, None, 1.5, False),
    (False, 3, 1.5, True),
    (False, 11, 1.5, False),
    (True, None, 1.5, False),  # Wang et al. as the skimage docs describe
    (True, None, 1.5, True),  # sample covariance factor still applied with Gaussian weights
    (True, None, 0.8, False),
    (True, None, 2.0, True),
]


def _our_kwargs(gw: bool, win: int | None, sigma: float, cov: bool) -> dict:
    return dict(
        window="gaussian" if gw else "uniform",
        win_size=win,
        sigma=sigma,
        sample_covariance=cov,
        border="valid",
    )


def _sk_kwargs(gw: bool, win: int | None, sigma: float, cov: bool) -> dict:
    kw: dict = dict(gaussian_weights=gw, use_sample_covariance=cov)
    if win is not None:
        kw["win_size"] = win
    if gw:
        kw["sigma"] = sigma
    return kw


@pytest.mark.parametrize("convention", SK_CONVENTIONS)
@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_ssim_gray_matches_skimage(convention: tuple, scale: float) -> None:
    for i, clean in enumerate(gray_images()):
        a, b = clean * scale, noisy(clean, 25, seed=10 + i) * scale
        expected = skm.structural_similarity(a, b, data_range=scale, **_sk_kwargs(*convention))
        got = float(ssim(a, b, data_range=scale, **_our_kwargs(*convention)))
        assert abs(got - expected) < 1e-5, (convention, got, expected)


@pytest.mark.parametrize("convention", SK_CONVENTIONS[:1] + SK_CONVENTIONS[4:6])
def test_ssim_rgb_matches_skimage_channel_axis(convention: tuple) -> None:
    for i, clean in enumerate(rgb_images()):
        a, b = clean * 255, noisy(clean, 15, seed=20 + i) * 255
        expected = skm.structural_similarity(
            a, b, data_range=255, channel_axis=-1, **_sk_kwargs(*convention)
        )
        got = float(ssim(a, b, data_range=255, **_our_kwargs(*convention)))
        assert abs(got - expected) < 1e-5


def test_ssim_constants_match_skimage() -> None:
    a = gray_images()[0]
    b = noisy(a, 30, seed=3)
    expected = skm.structural_similarity(
        a, b, data_range=1, gaussian_weights=True, use_sample_covariance=False, K1=0.05, K2=0.1
    )
    assert abs(float(ssim(a, b, k1=0.05, k2=0.1)) - expected) < 1e-5


def test_default_window_sizes() -> None:
    assert default_win_size("gaussian", 1.5) == 11
    assert default_win_size("gaussian", 0.8) == 7
    assert default_win_size("uniform") == 7


def test_sample_covariance_changes_result() -> None:
    a = gray_images()[0]
    b = noisy(a, 25, seed=4)
    pop = float(ssim(a, b, window="uniform", win_size=7))
    sample = float(ssim(a, b, window="uniform", win_size=7, sample_covariance=True))
    assert pop != pytest.approx(sample, abs=1e-6)


# ----------------------------------------------------------------- borders and volume mode


def _scipy_ssim(a: np.ndarray, b: np.ndarray, filt, c1: float, c2: float) -> float:
    mx, my = filt(a), filt(b)
    vx, vy, cxy = filt(a * a) - mx * mx, filt(b * b) - my * my, filt(a * b) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


@pytest.mark.parametrize(
    "border,mode", [("same", "constant"), ("replicate", "nearest"), ("symmetric", "reflect")]
)
def test_padded_borders_match_scipy_modes(border: str, mode: str) -> None:
    a = gray_images()[1]
    b = noisy(a, 25, seed=5)

    def filt(t: np.ndarray) -> np.ndarray:
        return ndi.gaussian_filter(t, 1.5, truncate=3.5, mode=mode, cval=0.0)

    expected = _scipy_ssim(a, b, filt, 0.01**2, 0.03**2)
    assert abs(float(ssim(a, b, border=border)) - expected) < 1e-10


def test_volume_mode_matches_3d_gaussian_ssim() -> None:
    """MATLAB ssim() on HxWx3: 3-D Gaussian (11 taps, replicate) over rows, columns, channels."""
    clean = rgb_images()[0]
    a = np.round(clean * 255)
    b = np.round(noisy(clean, 20, seed=6) * 255)

    def filt(t: np.ndarray) -> np.ndarray:
        return ndi.gaussian_filter(t, 1.5, truncate=5 / 1.5, mode="nearest")

    expected = _scipy_ssim(a, b, filt, (0.01 * 255) ** 2, (0.03 * 255) ** 2)
    got = float(ssim(a, b, data_range=255, border="replicate", channel_mode="volume"))
    assert abs(got - expected) < 1e-10
    per_channel = float(ssim(a, b, data_range=255, border="replicate"))
    assert abs(per_channel - expected) > 1e-4  # the two MATLAB readings really differ
    via_protocol = float(ssim(clean, noisy(clean, 20, seed=6), protocol="mprnet"))
    assert abs(via_protocol - expected) < 1e-10


# ----------------------------------------------------------------- colour conventions


def _matlab_y(rgb255: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr, Y row, for RGB on 0..255 (double arithmetic)."""
    t = np.array([65.481, 128.553, 24.966]) / 255.0
    return 16.0 + rgb255 @ t


def _np_psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    return float(10 * np.log10(peak**2 / np.mean((a - b) ** 2)))


def test_y_conventions_against_independent_formulas() -> None:
    clean = rgb_images()[0]
    out = noisy(clean, 15, seed=7)
    a, b = clean * 255, out * 255  # clean is uint8-valued, out is float

    studio = _np_psnr(_matlab_y(a), _matlab_y(b), 255)
    assert abs(float(psnr(clean, out, color="y")) - studio) < 1e-9

    ya, yb = np.floor(_matlab_y(a) + 0.5), np.floor(_matlab_y(b) + 0.5)
    assert abs(float(psnr(clean, out, color="y-uint8")) - _np_psnr(ya, yb, 255)) < 1e-9

    cv = np.array([0.299, 0.587, 0.114])
    full = _np_psnr(a @ cv, b @ cv, 255)
    assert abs(float(psnr(clean, out, color="y-full")) - full) < 1e-9
    assert abs(float(psnr(clean, out, color="gray")) - full) < 1e-9

    edsr = np.array([65.738, 129.057, 25.064]) / 256
    diff = (clean - out) @ edsr
    assert abs(float(psnr(clean, out, color="y-edsr")) - (-10 * np.log10(np.mean(diff**2)))) < 1e-9

    qa = np.floor(a).astype(np.int64)
    qb = np.floor(b.clip(0, 255)).astype(np.int64)
    ia = (qa @ np.array([4899, 9617, 1868]) + 8192) >> 14
    ib = (qb @ np.array([4899, 9617, 1868]) + 8192) >> 14
    got = float(psnr(qa, qb, data_range=255, color="y-full-uint8"))
    assert abs(got - _np_psnr(ia.astype(float), ib.astype(float), 255)) < 1e-9


def test_y_studio_range_endpoints() -> None:
    white, black = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    # PSNR between white and black on Y: studio range spans 235 - 16 = 219 levels.
    expected = 10 * np.log10(255**2 / 219**2)
    assert float(psnr(white, black, color="y")) == pytest.approx(expected, abs=1e-9)
    assert float(psnr(white, black, color="y-uint8")) == pytest.approx(expected, abs=1e-9)
    assert float(psnr(white, black, color="y-full")) == pytest.approx(0.0, abs=1e-9)


def test_channel_order_bgr() -> None:
    clean = rgb_images()[1]
    out = noisy(clean, 10, seed=8)
    rgb = float(psnr(clean, out, color="y"))
    bgr = float(psnr(clean[..., ::-1], out[..., ::-1], color="y", channel_order="bgr"))
    assert bgr == pytest.approx(rgb, abs=1e-9)
    assert float(psnr(clean[..., ::-1], out[..., ::-1], color="y")) != pytest.approx(rgb, abs=1e-4)


def test_single_channel_passes_through_colour_modes() -> None:
    a = gray_images()[0]
    b = noisy(a, 25, seed=9)
    base = float(psnr(a, b))
    for color in ("gray", "y", "y-full", "y-edsr"):
        assert float(psnr(a, b, color=color)) == pytest.approx(base, abs=1e-9)


# ----------------------------------------------------------------- quantisation, crop, batches


def test_quantize_round_and_floor() -> None:
    x = torch.tensor([[[0.10, 0.50, 0.999, 1.7], [-0.2, 0.2, 0.6, 0.0041]]])
    y = torch.zeros_like(x)
    for mode, fn in (("round", np.round), ("floor", np.floor)):
        q = np.clip(fn(x.numpy().astype(np.float64) * 255), 0, 255)
        expected = 10 * np.log10(255**2 / np.mean(q**2))
        assert float(psnr(x, y, quantize=mode)) == pytest.approx(expected, abs=1e-9)
    assert float(psnr(x, y, quantize="round")) != pytest.approx(
        float(psnr(x, y, quantize="floor")), abs=1e-3
    )
    # Same result whatever the input scale.
    assert float(psnr(x * 255, y, quantize="floor", data_range=255)) == pytest.approx(
        float(psnr(x, y, quantize="floor")), abs=1e-9
    )


def test_floor_keeps_exact_uint8_levels_of_float32_images() -> None:
    # Images loaded as float32 k/255 must truncate back to level k, not k - 1.
    levels = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16)
    as_float = levels / 255
    assert float(psnr(as_float, levels / 255 + 0.0, quantize="floor")) == float("inf")
    shifted = (levels + 1).clamp(max=255) / 255
    # Exactly one level apart everywhere except at 255: MSE = 255/256.
    expected = 10 * np.log10(255**2 / (255 / 256))
    assert float(psnr(as_float, shifted, quantize="floor")) == pytest.approx(expected, abs=1e-9)


def test_crop_border_equals_manual_crop() -> None:
    clean = rgb_images()[0]
    out = noisy(clean, 20, seed=11)
    c = 4
    expected = skm.peak_signal_noise_ratio(clean[c:-c, c:-c], out[c:-c, c:-c], data_range=1)
    assert float(psnr(clean, out, crop_border=c)) == pytest.approx(expected, abs=1e-9)
    expected_ssim = float(ssim(clean[c:-c, c:-c], out[c:-c, c:-c]))
    assert float(ssim(clean, out, crop_border=c)) == pytest.approx(expected_ssim, abs=1e-12)
    uncropped = float(psnr(clean, out))
    assert float(psnr(clean, out, crop_border=c)) != pytest.approx(uncropped, abs=1e-6)


def test_batch_reduction_none_and_mean() -> None:
    imgs = rgb_images()
    clean = torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im in imgs])
    noisy_imgs = [noisy(im, 10 + 10 * i, seed=i) for i, im in enumerate(imgs)]
    out = torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im in noisy_imgs])
    for metric in (psnr, ssim):
        per = metric(clean, out, reduction="none")
        assert per.shape == (len(imgs),)
        singles = [metric(clean[i], out[i]) for i in range(len(imgs))]
        assert all(type(v) is float for v in singles), "one image: a Python float, as scikit-image returns"
        assert isinstance(metric(clean, out), torch.Tensor) and metric(clean, out).ndim == 0, "a batch: a tensor"
        assert per.tolist() == pytest.approx(singles, abs=1e-12)
        assert metric(clean, out).item() == pytest.approx(float(np.mean(singles)), abs=1e-12)
        assert per[0].item() != pytest.approx(per[1].item(), abs=1e-6)


def test_numpy_hwc_equals_tensor_chw() -> None:
    clean = rgb_images()[0]
    out = noisy(clean, 20, seed=12)
    t_clean = torch.from_numpy(clean.copy()).permute(2, 0, 1).float()
    t_out = torch.from_numpy(out.copy()).permute(2, 0, 1).float()
    assert float(psnr(clean.astype(np.float32), out.astype(np.float32))) == pytest.approx(
        float(psnr(t_clean, t_out)), abs=1e-9
    )
    assert float(ssim(clean.astype(np.float32), out.astype(np.float32))) == pytest.approx(
        float(ssim(t_clean, t_out)), abs=1e-12
    )
    assert type(psnr(t_clean, out.astype(np.float32))) is float
    assert psnr(t_clean[None], torch.from_numpy(out.astype(np.float32)).permute(2, 0, 1)[None]).dtype == torch.float64


def test_uint8_input_with_data_range_255() -> None:
    clean = rgb_images()[0]
    a = np.round(clean * 255).astype(np.uint8)
    b = np.round(noisy(clean, 20, seed=13) * 255).astype(np.uint8)
    expected = skm.peak_signal_noise_ratio(a, b, data_range=255)
    assert float(psnr(a, b, data_range=255)) == pytest.approx(expected, abs=1e-4)


def test_identical_images() -> None:
    a = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.isinf(psnr(a, a)).item()
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------- protocols


def test_protocol_table_is_complete_and_valid() -> None:
    required = {"dncnn", "durn-gray", "durn-rgb", "durn-y", "mprnet-derain", "mprnet", "ipt"}
    required.add("matlab")
    assert required <= set(PROTOCOLS)
    assert list_protocols() == sorted(PROTOCOLS)
    a = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    b = (a + 0.05 * noise).clamp(0, 1)
    for name, proto in PROTOCOLS.items():
        assert isinstance(proto, MetricProtocol) and len(proto.description) > 40
        assert np.isfinite(float(psnr(a, b, protocol=name)))
        assert 0 < float(ssim(a, b, protocol=name)) < 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROTOCOLS["dncnn"].color = "y"


def test_explicit_kwargs_override_protocol() -> None:
    clean = rgb_images()[0]
    out = noisy(clean, 20, seed=14)
    via = float(psnr(clean, out, protocol="matlab", crop_border=3))
    manual = float(psnr(clean, out, quantize="round", color="y-uint8", crop_border=3))
    assert via == pytest.approx(manual, abs=1e-12)
    # Overriding with the global default value still counts as given.
    reset = float(psnr(clean, out, protocol="matlab", quantize=None, color="as-is"))
    assert reset == pytest.approx(float(psnr(clean, out)), abs=1e-12)
    wang = dict(window="gaussian", win_size=None, sample_covariance=False)
    assert float(ssim(clean, out, protocol="durn-rgb", **wang)) == pytest.approx(
        float(ssim(clean, out, quantize="floor")), abs=1e-12
    )


def test_durn_y_protocol_matches_reference_pipeline() -> None:
    """DuRN rain test: clip, *255 in float32, astype(uint8), OpenCV Y, skimage defaults."""
    clean = rgb_images()[1].astype(np.float32)
    out = noisy(clean, 12, seed=15, clip=False).astype(np.float32)

    def to_y(img: np.ndarray) -> np.ndarray:
        u8 = (np.clip(img, 0, 1) * np.float32(255)).astype(np.uint8).astype(np.int64)
        return ((u8 @ np.array([4899, 9617, 1868]) + 8192) >> 14).astype(np.uint8)

    ya, yb = to_y(clean), to_y(out)
    assert float(psnr(out, clean, protocol="durn-y")) == pytest.approx(
        skm.peak_signal_noise_ratio(yb, ya, data_range=255), abs=1e-4
    )
    assert float(ssim(out, clean, protocol="durn-y")) == pytest.approx(
        skm.structural_similarity(yb, ya, data_range=255), abs=1e-5
    )


def test_mprnet_derain_protocol_matches_reference_pipeline() -> None:
    """img_as_ubyte, MATLAB rgb2ycbcr on uint8, Wang's ssim_index (filter2 'valid')."""
    clean = rgb_images()[0]
    out = noisy(clean, 12, seed=16, clip=False)

    def to_y(img: np.ndarray) -> np.ndarray:
        u8 = np.rint(np.clip(img, 0, 1) * 255)
        return np.floor(_matlab_y(u8) + 0.5)

    ya, yb = to_y(out), to_y(clean)
    g = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()

    def filt(t: np.ndarray) -> np.ndarray:
        return ndi.correlate(t, win, mode="constant")[5:-5, 5:-5]

    expected = _scipy_ssim(ya, yb, filt, (0.01 * 255) ** 2, (0.03 * 255) ** 2)
    assert float(ssim(out, clean, protocol="mprnet-derain")) == pytest.approx(expected, abs=1e-10)
    assert float(psnr(out, clean, protocol="mprnet-derain")) == pytest.approx(
        _np_psnr(ya, yb, 255), abs=1e-9
    )


def test_real_noise_level_psnr_on_set12() -> None:
    if not (DENOISE / "Set12").is_dir():
        pytest.skip(f"reference data not found at {DENOISE / 'Set12'} (../shared is absent)")
    imgs = _load(DENOISE / "Set12", [f"{i:02d}.png" for i in range(1, 13)], "L")
    clean = [torch.from_numpy(im) for im in imgs]
    gen = torch.Generator().manual_seed(0)
    vals = [
        float(psnr(c, c + 25 / 255 * torch.randn(c.shape, generator=gen, dtype=torch.float64)))
        for c in clean
    ]
    # Unclipped Gaussian noise of sigma 25 is 20*log10(255/25) = 20.17 dB on any image.
    assert float(np.mean(vals)) == pytest.approx(20 * np.log10(255 / 25), abs=0.02)


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(protocol="dncn"),
        dict(color="ycbcr"),
        dict(quantize="ceil"),
        dict(channel_order="grb"),
        dict(reduction="sum"),
        dict(data_range=0),
        dict(crop_border=-1),
        dict(crop_border=1.5),
    ],
)
def test_bad_options_raise(kwargs: dict) -> None:
    a = torch.rand(1, 3, 16, 16)
    with pytest.raises(RestoreKitError):
        psnr(a, a, **kwargs)
    with pytest.raises(RestoreKitError):
        ssim(a, a, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(window="box"), dict(border="wrap"), dict(win_size=8), dict(win_size=1), dict(sigma=0),
     dict(channel_mode="cube"), dict(channel_mode="volume", border="valid"), dict(win_size=21)],
)
def test_bad_ssim_options_raise(kwargs: dict) -> None:
    a = torch.rand(1, 3, 16, 16)
    with pytest.raises(RestoreKitError):
        ssim(a, a, **kwargs)


def test_shape_and_type_errors() -> None:
    a = torch.rand(1, 3, 16, 16)
    with pytest.raises(RestoreKitError, match="same shape"):
        psnr(a, torch.rand(1, 3, 16, 15))
    with pytest.raises(RestoreKitError, match="NxCxHxW"):
        psnr(torch.rand(1, 1, 3, 16, 16), torch.rand(1, 1, 3, 16, 16))
    with pytest.raises(RestoreKitError, match="numpy"):
        psnr(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8, 3)))
    with pytest.raises(RestoreKitError):
        psnr([[0.0]], [[0.0]])
    with pytest.raises(RestoreKitError, match="1 or 3 channels"):
        psnr(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8), color="y")
    with pytest.raises(RestoreKitError, match="crop_border"):
        psnr(a, a, crop_border=8)
    with pytest.raises(RestoreKitError, match="data_range"):
        psnr(np.full((8, 8), 200, np.uint8), np.zeros((8, 8), np.uint8), data_range=1.0)  # explicit, too small
    with pytest.raises(RestoreKitError, match="smaller than"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_integer_images_take_their_dtype_range_as_scikit_image_does() -> None:
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(7)
    for dtype in (np.uint8, np.uint16):
        top = np.iinfo(dtype).max
        a = rng.integers(0, top, (40, 36, 3), endpoint=True).astype(dtype)
        b = np.clip(a.astype(np.int64) + rng.integers(-top // 20, top // 20, a.shape), 0, top).astype(dtype)
        assert abs(float(psnr(a, b)) - peak_signal_noise_ratio(a, b)) < 1e-9
        scaled = float(ssim(a.astype(np.float64) / top, b.astype(np.float64) / top, data_range=1.0))
        assert abs(float(ssim(a, b)) - scaled) < 1e-9
    same = rng.integers(0, 255, (8, 8), endpoint=True).astype(np.uint8)
    with pytest.raises(RestoreKitError, match="data_range=255"):
        psnr(same, same.astype(np.float32))  # mixed: no range to infer, the float's 1.0 does not fit
