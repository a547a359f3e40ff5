"""Pixels and text for the report's images: shared by the crop strips, comparisons and training grids."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["rgb8", "font"]


def rgb8(img: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 from float [0, 1] or uint8 pixels, gray or colour."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def font(size: int = 13) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()
