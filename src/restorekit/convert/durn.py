"""liu-vis/DualResidualNetworks checkpoints: ``torch.save(cleaner.state_dict())`` of the six networks.

restorekit's DuRN modules keep the reference's attribute names, so keys map 1:1 (``module.`` from a
DataParallel save is stripped by :func:`restorekit.convert.read_pth`). The files were written by
PyTorch 0.3, which had no BatchNorm ``num_batches_tracked`` buffer: the missing ones are added as 0
(they only matter for ``momentum=None`` training). The variant is recognised from the exact key set,
the channel count from the first convolution.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ..errors import RestoreKitError
from .base import Converted, register_pth_converter

SOURCE_FORMAT = "DualResidualNetworks cleaner.state_dict()"
_NBT = "num_batches_tracked"

# restorekit variant → the reference's module file defining its ``cleaner``.
VARIANTS: dict[str, str] = {
    "durn-p": "pietorch/DuRN_P.py",
    "durn-p-nonorm": "pietorch/DuRN_P_no_norm.py",
    "durn-u": "pietorch/DuRN_U.py",
    "durn-us": "pietorch/DuRN_US.py",
    "durn-s": "pietorch/DuRN_S.py",
    "durn-s-p": "pietorch/DuRN_S_P.py",
}


def _expected(arch: str, channels: int | None = None) -> dict[str, torch.Size]:
    from ..models import create_model

    # Built on the meta device: shapes only, no memory or initialisation cost.
    with torch.device("meta"):
        model = create_model(arch) if channels is None else create_model(arch, channels=channels)
    return {k: v.shape for k, v in model.state_dict().items()}


@lru_cache(maxsize=None)
def _key_sets() -> dict[frozenset[str], str]:
    return {frozenset(k for k in _expected(arch) if not k.endswith(_NBT)): arch for arch in VARIANTS}


def _first_conv(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return state["conv1.conv2d.weight"] if "conv1.conv2d.weight" in state else state["conv1.weight"]


@register_pth_converter("durn")
def from_durn(state: dict[str, torch.Tensor], path: Path) -> Converted | None:
    """Recognise a DuRN-P/-P-no-norm/-U/-US/-S/-S-P state dict; ``None`` for any other layout."""
    keys = frozenset(k for k in state if not k.endswith(_NBT))
    arch = _key_sets().get(keys)
    if arch is None:
        return None
    channels = int(_first_conv(state).shape[1])
    expected = _expected(arch, channels)
    bad = [f"{k} {tuple(state[k].shape)} vs {tuple(s)}" for k, s in expected.items()
           if k in state and tuple(state[k].shape) != tuple(s)]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise RestoreKitError(f"{path}: {arch} layout with unexpected shapes: {'; '.join(bad[:3])}{more}")
    out = {k: v for k, v in state.items()}
    added = 0
    for key in expected:
        if key.endswith(_NBT) and key not in out:
            out[key] = torch.tensor(0, dtype=torch.long)
            added += 1
    notes = {"reference_module": VARIANTS[arch], "num_batches_tracked_added": added}
    return Converted(arch=arch, args={"channels": channels}, state_dict=out, source_format=SOURCE_FORMAT, notes=notes)
