"""JPEG compression artefacts by a real encode/decode with Pillow (libjpeg), in memory."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import RestoreKitError
from .blur import _as_batch, _unbatch


def jpeg_compress(img: torch.Tensor, quality: int | Sequence[int]) -> torch.Tensor:
    """Encode and decode as JPEG at ``quality`` (1–100; or one per image of a batch).

    Gray (C = 1) images are coded as greyscale, RGB (C = 3) as YCbCr with Pillow's default 4:2:0 chroma
    subsampling and standard (IJG) quantisation tables. Values are clipped to [0, 1] and
    rounded to 8 bits first, as a saved file would be. Returns a tensor of the input's dtype and device.
    """
    x, squeeze = _as_batch(img, "jpeg_compress")
    n, c, _, _ = x.shape
    if c not in (1, 3):
        raise RestoreKitError(f"jpeg_compress: needs 1 (gray) or 3 (RGB) channels, got {c}")
    qualities = [quality] * n if not isinstance(quality, Sequence) else list(quality)
    if len(qualities) != n:
        raise RestoreKitError(f"jpeg_compress: {len(qualities)} qualities for a batch of {n}")
    for q in qualities:
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 1 <= q <= 100:
            raise RestoreKitError(f"jpeg_compress: quality must be an integer in 1..100, got {q!r}")
    pixels = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).numpy()
    out = []
    for arr, q in zip(pixels, qualities):
        image = Image.fromarray(np.ascontiguousarray(arr[..., 0] if c == 1 else arr))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=int(q))
        buf.seek(0)
        with Image.open(buf) as decoded:
            dec = np.asarray(decoded.convert("L" if c == 1 else "RGB"), dtype=np.uint8)
        out.append(torch.from_numpy(dec.copy()).reshape(arr.shape))
    y = torch.stack(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255
    return _unbatch(y, squeeze)
