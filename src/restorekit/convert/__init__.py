"""Converters from official checkpoint formats to restorekit's own.

Each foreign format lives in its own module and registers a function that recognises its layout and
returns a :class:`Converted` (or ``None`` when the layout is not its own). ``.pth`` files (and ``.pkl``
state dicts written by ``torch.save``, as the xUnit authors released theirs) are read with
``weights_only=True`` and MATLAB files as data: converting never executes code from the file.
"""

from . import dncnn, durn, ipt, mprnet, xdncnn  # noqa: F401  (each registers its converters)
from .base import (
    CONVERTERS,
    Converted,
    MatConverter,
    PthConverter,
    convert_checkpoint,
    convert_file,
    read_pth,
    register_mat_converter,
    register_pth_converter,
)

__all__ = ["CONVERTERS", "Converted", "MatConverter", "PthConverter", "convert_checkpoint", "convert_file",
           "read_pth", "register_mat_converter", "register_pth_converter"]
