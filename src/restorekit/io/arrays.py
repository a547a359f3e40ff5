"""Images in memory: the :class:`Image` record and conversions between numpy arrays, PIL images and torch
tensors, all as float32 H×W×C pixels in [0, 1]."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage

from ..errors import RestoreKitError

if TYPE_CHECKING:
    import torch

__all__ = ["Image", "from_numpy_image", "image_to_tensor", "resize_alpha", "tensor_to_image", "to_numpy_image"]

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
        samples, bit_depth, _ = _pil_samples(obj, Path("<PIL image>"))
        pixels = _to_float(samples)
        meta.update(kind="pil", mode=mode, bit_depth=bit_depth)
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


def _pil_samples(img: PILImage.Image, path: Path) -> tuple[np.ndarray, int, np.ndarray | None]:
    """A loaded PIL image → (uint8/uint16 H×W×C samples with alpha last, bit depth, tRNS colour or None)."""
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
    return samples, bit_depth, transparent


def _palette_has_transparency(img: PILImage.Image) -> bool:
    return "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA")


def _to_float(samples: np.ndarray) -> np.ndarray:
    scale = 65535.0 if samples.dtype == np.uint16 else 255.0
    return samples.astype(np.float32) / np.float32(scale)


def _quantize(x: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 65535 if bit_depth == 16 else 255
    q = np.rint(np.clip(x, 0.0, 1.0) * np.float32(top))
    return q.astype(np.uint16 if bit_depth == 16 else np.uint8)


def _pil_from_samples(samples: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)


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
