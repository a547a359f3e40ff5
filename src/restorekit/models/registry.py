"""Model registry in the spirit of timm: each variant is a small typed factory registered with its metadata."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn

from ..errors import RestoreKitError
from ..registry import Registry


@dataclass(frozen=True)
class ModelInfo:
    """What the inference path, the CLI and the checkpoints need to know about a variant.

    ``input_range`` is the value of white (1.0 or 255.0); ``size_multiple`` the size the model's
    height and width must divide by (the inference path pads); ``output_index`` picks the final image
    of a multi-output model; ``tasks`` names the tasks a multi-task model takes as ``forward(x, task=…)``,
    ``scales`` their up-scaling factors; ``fixed_size`` marks models that take exactly
    ``model.patch_size``² inputs (IPT's body folds a fixed grid), which the inference path always tiles.
    ``protocol`` names the paper's metric convention (a key of ``restorekit.metrics.PROTOCOLS``), the
    default of ``restorekit eval``; empty: the task's usual one. ``tiling`` is the default tiled-inference
    protocol (``"chop"``: the reference's ``forward_chop``, see :mod:`restorekit.inference.chop`); empty:
    blended tiles. ``task_inputs`` marks a multi-task model that is one network for all its tasks (its
    ``forward`` takes no task): per task, how the inference path prepares the input first, ``""`` (as
    is) or ``"bicubic-up-N"`` (MATLAB-bicubic ×N, for pre-upsampling SR networks such as DnCNN-3).
    """

    name: str
    family: str
    task: str
    channels: int
    params: int | None = None
    input_range: float = 1.0
    size_multiple: int = 1
    color_order: str = "rgb"
    scale: int = 1
    output_index: int | None = None
    tasks: tuple[str, ...] = ()
    scales: tuple[int, ...] = ()
    fixed_size: bool = False
    protocol: str = ""
    tiling: str = ""
    task_inputs: dict[str, str] = field(default_factory=dict)
    paper: str = ""
    description: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    info: ModelInfo


# Filled by the family modules as restorekit.models imports them (models/__init__.py): this module
# imports none of them, so that they can import it.
MODELS: Registry[_Entry] = Registry("model", casefold=True, listing="`restorekit models` lists them")


def register_model(
    name: str,
    *,
    family: str,
    task: str,
    channels: int,
    params: int | None = None,
    **meta: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``factory`` under ``name``; ``params`` is the reference implementation's count of its
    default construction."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        info = ModelInfo(name=name, family=family, task=task, channels=channels, params=params, **meta)
        MODELS.register(name, _Entry(factory, info))
        return factory

    return decorator


def _entry(name: str) -> _Entry:
    return MODELS.get(name)


def serves(info: ModelInfo, task: str) -> bool:
    """Whether a model does ``task``: its main task or one of a multi-task model's (``sr`` covers
    ``sr-x2`` …, so DnCNN-3 and IPT's pre-trained model are super-resolution models too)."""
    return any(t == task or t.startswith(task + "-") for t in (info.task, *info.tasks))


def all_tasks() -> list[str]:
    """Every task some registered model does, sorted (multi-task models' tasks included)."""
    return sorted({t for e in MODELS.values() for t in (e.info.task, *e.info.tasks) if t})


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Names of the registered variants, sorted, filtered by a shell pattern and/or a task they do
    (see :func:`serves`)."""
    import fnmatch

    return sorted(
        n for n, e in MODELS.items() if fnmatch.fnmatch(n, pattern) and (task is None or serves(e.info, task))
    )


def model_info(name: str, **kwargs: Any) -> ModelInfo:
    """Metadata of a variant as it would be built with ``kwargs`` (e.g. ``channels=3``)."""
    entry = _entry(name)
    sig = inspect.signature(entry.factory)
    unknown = [k for k in kwargs if k not in sig.parameters]
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        valid = ", ".join(p for p in sig.parameters) or "none"
        raise RestoreKitError(f"model {name!r} takes no argument {', '.join(unknown)} (valid: {valid})")
    info = entry.info
    updates: dict[str, Any] = {"args": dict(kwargs)}
    for key in ("channels", "scale"):
        if key in kwargs:
            updates[key] = kwargs[key]
    return replace(info, **updates)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered variant (architecture only, initialised weights); ``model.info`` holds its metadata."""
    info = model_info(name, **kwargs)
    model = _entry(name).factory(**kwargs)
    model.info = info  # type: ignore[assignment]
    return model


def zero_output_layer(model: nn.Module) -> None:
    """Zero the layer that makes a residual model's residual (its ``output_layer``), so that the model
    starts as the identity: x ± tanh(0) = x for the DuRNs, x − 0 for DnCNN."""
    name = getattr(model, "output_layer", None)
    if not name:
        arch = getattr(getattr(model, "info", None), "name", type(model).__name__)
        raise RestoreKitError(f"{arch} has no output layer that makes a residual (DnCNN and the DuRNs have one)")
    with torch.no_grad():
        for p in model.get_submodule(name).parameters():
            p.zero_()


def count_parameters(model: nn.Module) -> int:
    """Parameters and BatchNorm-free buffers excluded: what the papers and reference code count."""
    return sum(p.numel() for p in model.parameters())
