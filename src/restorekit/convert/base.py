"""The converter registry and the readers every converter shares (``.pth``/``.pkl`` state dicts read
with ``weights_only=True``, MATLAB files read as data), and :func:`convert_file`."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import RestoreKitError
from ..registry import Registry


@dataclass
class Converted:
    arch: str
    args: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    source_format: str
    notes: dict[str, Any] = field(default_factory=dict)


PthConverter = Callable[[dict[str, torch.Tensor], Path], "Converted | None"]
MatConverter = Callable[[Any, Path], "Converted | None"]

# name -> (container, converter); container is "pth" (a state dict) or "mat" (MatConvNet). Tried in
# registration order: each converter returns None for a layout that is not its own. Filled by the
# converter modules as restorekit.convert imports them; this module imports none of them.
CONVERTERS: Registry[tuple[str, Callable[[Any, Path], Converted | None]]] = Registry("format")


def register_pth_converter(name: str) -> Callable[[PthConverter], PthConverter]:
    def deco(fn: PthConverter) -> PthConverter:
        CONVERTERS.register(name, ("pth", fn))
        return fn

    return deco


def register_mat_converter(name: str) -> Callable[[MatConverter], MatConverter]:
    def deco(fn: MatConverter) -> MatConverter:
        CONVERTERS.register(name, ("mat", fn))
        return fn

    return deco


_WRAPPER_KEYS = ("state_dict", "params", "params_ema", "model", "net", "model_state_dict")


def read_pth(path: Path) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` state dict without executing code; unwrap training wrappers and ``module.``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol 4…": noise for the user
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RestoreKitError(
            f"{path}: refused: the file holds pickled objects beyond tensors, and loading them would execute code "
            f"from the file ({_unpickling_reason(exc)}); restorekit reads .pth files with weights_only=True only. "
            "If you trust its source, re-save the model's state_dict() (tensors only) and convert that"
        ) from None
    except Exception as exc:  # a truncated, corrupt or foreign file: the parsers raise anything (KeyError, …)
        first = str(exc).strip().splitlines()[0].split(". This is an internal")[0] if str(exc).strip() else ""
        if not isinstance(exc, (RuntimeError, OSError, ValueError, EOFError)) or not first:
            first = f"{type(exc).__name__} {first}".strip()  # KeyError 101 says little on its own
        raise RestoreKitError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise RestoreKitError(f"{path}: no state dict of tensors found in the file")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _unpickling_reason(exc: BaseException) -> str:
    """The specific part of torch's weights-only refusal ("Unsupported global: GLOBAL posix.system was not
    an allowed global by default"), without its advice to load with weights_only=False."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        rest = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
    else:
        rest = [line.strip() for line in text.splitlines() if "GLOBAL" in line or "Unsupported" in line]
    if not rest:
        return "objects other than tensors"
    return rest[0].split(". ")[0].rstrip(".")


def convert_file(path: str | Path, *, fmt: str | None = None) -> Converted:
    """Detect the format and architecture of an official checkpoint and convert it."""
    path = Path(path)
    if not path.is_file():
        raise RestoreKitError(f"{path}: no such file")
    if fmt is not None:
        CONVERTERS.get(fmt)  # an unknown format fails with the nearest names before the file is read
    suffix = path.suffix.lower()
    if suffix == ".mat":
        container, obj = "mat", _open_mat(path)
    elif suffix in (".pth", ".pt", ".ckpt", ".bin", ".pkl"):
        container, obj = "pth", read_pth(path)
    else:
        raise RestoreKitError(f"{path}: unknown checkpoint type {suffix!r} (expected .mat, .pth, .pt, .pkl)")
    tried = []
    try:
        for name, (kind, fn) in CONVERTERS.items():
            if kind != container or (fmt is not None and name != fmt):
                continue
            tried.append(name)
            try:
                result = fn(obj, path)
            except RestoreKitError:
                raise
            except Exception as exc:  # a malformed file (wrong shapes, types, structure) met a converter's assumptions
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise RestoreKitError(f"{path}: malformed checkpoint: the {name} converter cannot read it "
                                      f"({type(exc).__name__}{': ' + first if first else ''})") from None
            if result is not None:
                return result
    finally:
        close = getattr(obj, "close", None)  # the .mat's HDF5 file
        if callable(close):
            close()
    if fmt is not None and not tried:
        raise RestoreKitError(f"{path}: format {fmt!r} reads {CONVERTERS.get(fmt)[0]} files, not {suffix}")
    keys = list(obj.keys())[:6] if isinstance(obj, dict) else []
    raise RestoreKitError(
        f"{path}: layout not recognised by any converter ({', '.join(tried)})"
        + (f"; first keys: {', '.join(keys)}" if keys else "")
    )


def _open_mat(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(str(path), "r")
    except OSError:
        raise RestoreKitError(
            f"{path}: not a MATLAB v7.3 (HDF5) file; re-save it in MATLAB with save(..., '-v7.3')"
        ) from None


def convert_checkpoint(src: str | Path, dst: str | Path, *, fmt: str | None = None, overwrite: bool = False) -> Converted:
    """Convert ``src`` and write it in restorekit's format to ``dst``, loading it strictly first."""
    from ..checkpoints import load_state_dict_strict, save_checkpoint
    from ..models import create_model

    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise RestoreKitError(f"{dst}: exists", hint="overwrite=True replaces it", cli_hint="pass --overwrite to replace it")
    conv = convert_file(src, fmt=fmt)
    model = create_model(conv.arch, **conv.args)
    load_state_dict_strict(model, conv.state_dict, source=str(src))
    meta = {"source": {"file": Path(src).name, "format": conv.source_format, **conv.notes}}
    save_checkpoint(dst, model, arch=conv.arch, args=conv.args, metadata=meta, overwrite=overwrite)
    return conv
