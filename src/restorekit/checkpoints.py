"""restorekit's checkpoint format: safetensors weights with JSON metadata in the file's header.

The metadata names the architecture and its arguments, so ``load(path)`` rebuilds the model without
being told what it is. Files are written atomically (temporary name, fsync, rename): an interrupted
save leaves the previous file intact. Nothing here unpickles: loading never executes code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import RestoreKitError
from .io.files import atomic_write

FORMAT_VERSION = "1"
META_KEY = "restorekit"


def _canonical_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop keys whose tensor shares storage with an earlier key (tied weights); return the alias map."""
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        seen[ident] = key
        kept[key] = tensor.detach().cpu().contiguous()
    return kept, aliases


def save_checkpoint(
    path: str | Path,
    model_or_state: nn.Module | dict[str, torch.Tensor],
    *,
    arch: str | None = None,
    args: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write weights + metadata. ``arch``/``args`` default to the model's registry info."""
    info = getattr(model_or_state, "info", None)
    if arch is None and info is not None:
        arch, args = info.name, dict(info.args) if args is None else args
    if arch is None:
        raise ValueError("save_checkpoint needs arch= for a model that was not built by create_model")
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else dict(model_or_state)
    tensors, aliases = _canonical_state_dict(state)
    meta = {
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "args": args or {},
        "aliases": aliases,
        **(metadata or {}),
    }
    header = {META_KEY: json.dumps(meta, sort_keys=True, default=str)}

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=header)
        except SafetensorError as exc:  # safetensors reports a full disk as "Error while serializing: IoError…"
            raise OSError(str(exc)) from exc

    return atomic_write(path, write, overwrite=overwrite)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (state_dict with aliases restored, metadata) of a restorekit checkpoint."""
    path = Path(path)
    meta = checkpoint_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RestoreKitError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    for alias, target in meta["aliases"].items():
        if target not in tensors:
            raise RestoreKitError(f"{path}: alias {alias} points to missing key {target}")
        tensors[alias] = tensors[target]
    return tensors, meta


def _parse_metadata(path: Path, header: dict[str, str]) -> dict[str, Any]:
    """The restorekit metadata of a safetensors header, checked: a mapping naming ``arch`` (a string)
    with mappings ``args`` and ``aliases``; anything else is a corrupt or foreign file."""
    if META_KEY not in header:
        raise RestoreKitError(
            f"{path}: safetensors file without restorekit metadata; convert it with `restorekit convert`"
        )
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise RestoreKitError(f"{path}: corrupted metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise RestoreKitError(f"{path}: corrupted metadata (a JSON {type(meta).__name__}, not an object)")
    if not isinstance(meta.get("arch"), str) or not meta["arch"]:
        raise RestoreKitError(f"{path}: corrupted metadata (no architecture name 'arch')")
    meta.setdefault("args", {})
    meta.setdefault("aliases", {})
    for key in ("args", "aliases"):
        if not isinstance(meta[key], dict):
            raise RestoreKitError(f"{path}: corrupted metadata ('{key}' is not a mapping)")
    return meta


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str = "checkpoint") -> None:
    """Raise a RestoreKitError naming missing, unexpected and mis-shaped keys, if any."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            problems.append(f"{label} {len(keys)}: {_abbrev(keys)}")
    if problems:
        arch = getattr(getattr(model, "info", None), "name", type(model).__name__)
        raise RestoreKitError(f"{source} does not fit {arch}: " + "; ".join(problems))


def _abbrev(keys: Iterable[str], n: int = 4) -> str:
    keys = list(keys)
    head = ", ".join(keys[:n])
    return head + (f", … (+{len(keys) - n})" if len(keys) > n else "")


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str = "checkpoint") -> None:
    check_state_dict(model, state, source=source)
    model.load_state_dict(state, strict=True)


def load(path: str | Path, *, map_location: str | torch.device = "cpu", **override_args: Any) -> nn.Module:
    """Rebuild the architecture named in the checkpoint and load its weights strictly, in eval mode."""
    from .models import create_model

    state, meta = read_checkpoint(path)
    args = {**meta["args"], **override_args}
    try:
        # The metadata is untrusted: build it without memory first, so that absurd arguments
        # (channels=10**7 beside a one-element tensor) are refused before anything is allocated.
        with torch.device("meta"):
            skeleton = create_model(meta["arch"], **args)
    except RestoreKitError as exc:  # e.g. a file from a newer restorekit, or metadata edited by hand
        raise RestoreKitError(f"{path}: the checkpoint's architecture {meta['arch']!r} cannot be built: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise RestoreKitError(f"{path}: the checkpoint's arguments {args} do not build {meta['arch']!r}: {exc}") from None
    check_state_dict(skeleton, state, source=str(path))
    model = create_model(meta["arch"], **args)
    model.load_state_dict(state, strict=True)
    model.checkpoint_meta = meta  # type: ignore[assignment]
    return model.to(map_location).eval()


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata alone, without reading the tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise RestoreKitError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise RestoreKitError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    return _parse_metadata(path, header)


def training_stages(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps, patches and hours of the run that wrote ``meta`` and of every run it continued from
    (``model.init_from`` checkpoints with restorekit metadata), oldest first. A missing parent raises:
    the weights' training could not be counted."""
    config = meta.get("config") or {}
    batch = int(config.get("train", {}).get("batch_size", 0)) * int(meta.get("world_size", 1))
    stage = {"steps": int(meta.get("step", 0)), "patches": int(meta.get("step", 0)) * batch,
             "hours": round(float(meta.get("wall_time", 0.0)) / 3600, 3), "lr": config.get("optim", {}).get("lr")}
    parent = (config.get("model") or {}).get("init_from")
    if not parent:
        return [stage]
    if not Path(parent).is_file():
        raise RestoreKitError(f"{parent}: the checkpoint this run started from is missing; its training cannot be counted")
    return [*training_stages(checkpoint_metadata(parent)), stage]
