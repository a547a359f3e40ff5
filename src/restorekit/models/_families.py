"""Imports every model family so that its variants register. Add a family here once."""

from . import dncnn, dncnn_unshuffle, durn, ipt, mprnet, resunet, xdncnn  # noqa: F401
