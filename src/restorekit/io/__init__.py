"""Read and write images as float32 H×W×C arrays in [0, 1], and convert between numpy, PIL and torch.

``read`` decodes files (with pixel limits checked from the header) and lists them, ``write`` encodes them,
``arrays`` converts between in-memory kinds and ``files`` writes files atomically. Callers import from
here: ``from restorekit.io import read_image``.
"""

from __future__ import annotations

from .arrays import (
    Image,
    from_numpy_image,
    image_to_tensor,
    resize_alpha,
    tensor_to_image,
    to_numpy_image,
)
from .read import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    current_pixel_limit,
    list_images,
    pixel_limit,
    read_image,
)
from .write import WRITE_EXTENSIONS, write_image

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
    "resize_alpha",
    "tensor_to_image",
    "to_numpy_image",
    "write_image",
]
