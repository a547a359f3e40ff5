"""Imports every converter module so that it registers. Add a format here once."""

from . import dncnn, durn, ipt, mprnet, xdncnn  # noqa: F401
