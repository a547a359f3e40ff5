"""kligvasser/xUnit checkpoints, both of its layouts.

- The generators (``g_xdncnn``, ``g_dncnn``): ``torch.save(g_model.state_dict())``. Keys are
  ``image_to_features.*``, ``features.N.*`` and ``features_to_image.*``; our ``xdncnn-ref`` /
  ``dncnn-ref`` modules use the same names, so only the sizes are read and the tensors pass through.
- The first release (2018, ``denoising/models.py``'s ``xDnCNN``, weights
  ``denoising/checkpoints/xdncnn_res_f64k3k9_s{25,50}.pkl``): a state dict pickled by ``torch.save``,
  read with ``weights_only=True`` like ``.pth`` files. ``md1.0`` is the first cell (``features.0`` its
  3×3 conv, ``module.{0,2,3}`` its xUnit's BN, depthwise 9×9 conv, BN), ``md2``..``md8`` are
  BN (``.0``) + cell (``.1``), ``joints`` the output conv: ``xdncnn-2018``, renamed key by key.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import RestoreKitError
from ..models import create_model
from .base import Converted, register_pth_converter

_XUNIT_DW = "image_to_features.xunit.features.0.weight"
_BLOCK = re.compile(r"features\.(\d+)\.")
_CELLS_2018 = 8


@register_pth_converter("xunit")
def convert_xunit(state: dict[str, torch.Tensor], path: Path) -> Converted | None:
    if state and all(k.startswith("module.") for k in state):  # DataParallel, when called directly
        state = {k[len("module."):]: v for k, v in state.items()}
    out = state.get("features_to_image.weight")
    if out is None or out.ndim != 4 or "image_to_features.conv.weight" not in state:
        return None
    channels, features = int(out.shape[0]), int(out.shape[1])
    blocks = len({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
    found = {"channels": channels, "blocks": blocks, "features": features}
    if _XUNIT_DW in state:
        gray = channels == 1
        arch = "xdncnn-ref-gray" if gray else "xdncnn-ref"
        found["xunit_kernel"] = int(state[_XUNIT_DW].shape[-1])
        defaults = {"channels": 1 if gray else 3, "blocks": 10 if gray else 8, "features": 64, "xunit_kernel": 7}
    else:
        arch, defaults = "dncnn-ref", {"channels": 3, "blocks": 8, "features": 64}
    # Only what differs from the variant's defaults, so the usual checkpoints record no arguments.
    args = {k: v for k, v in found.items() if v != defaults[k]}

    expected = create_model(arch, **args).state_dict()
    state = dict(state)
    for key, value in expected.items():
        # Checkpoints from PyTorch < 0.4.1 lack BatchNorm's counter; it only matters for momentum=None.
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
        return None  # same top-level names, different network (e.g. the discriminator or an edited model)
    return Converted(arch, args, state, "kligvasser/xUnit state_dict")


def _rename_2018(key: str) -> str | None:
    """The xdncnn-2018 name of a released key (``md3.1.module.2.weight`` → ``body.7.features.2.weight``)."""
    m = re.fullmatch(r"md(\d+)\.(\d)\.(.+)", key)
    if m is None:
        return f"body.{3 * _CELLS_2018 - 1}.{key[len('joints.'):]}" if key.startswith("joints.") else None
    cell, part, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    if not 1 <= cell <= _CELLS_2018:
        return None
    if cell == 1:
        conv = 0
    elif part == 0:
        return f"body.{3 * cell - 4}.{rest}"  # the BN before the cell's conv
    else:
        conv = 3 * cell - 3
    if part != (0 if cell == 1 else 1):
        return None
    if rest.startswith("features.0."):
        return f"body.{conv}.{rest[len('features.0.'):]}"
    inner = re.fullmatch(r"module\.([023])\.(.+)", rest)
    return f"body.{conv + 1}.features.{inner.group(1)}.{inner.group(2)}" if inner else None


@register_pth_converter("xunit-2018")
def convert_xunit_2018(state: dict[str, torch.Tensor], path: Path) -> Converted | None:
    if "md1.0.features.0.weight" not in state or "joints.weight" not in state:
        return None
    expected = create_model("xdncnn-2018").state_dict()
    renamed: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in state.items():
        new = _rename_2018(key)
        if new is None or new not in expected:
            unexpected.append(key)
        else:
            renamed[new] = value
    for key, value in expected.items():
        # Saved with PyTorch < 0.4.1: no BatchNorm counters; they only matter for momentum=None.
        if key.endswith("num_batches_tracked") and key not in renamed:
            renamed[key] = torch.zeros_like(value)
    missing = [k for k in expected if k not in renamed]
    wrong = [f"{k} {tuple(renamed[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in renamed and renamed[k].shape != v.shape]
    if unexpected or missing or wrong:
        problems = [f"{label}: {', '.join(items[:3])}{' …' if len(items) > 3 else ''}"
                    for label, items in (("unexpected keys", unexpected), ("missing", missing), ("shapes", wrong))
                    if items]
        raise RestoreKitError(f"{path}: the xUnit 2018 layout (md1..md8, joints) but not the released xDnCNN "
                              f"(gray, 64 features, 9×9 xUnits): {'; '.join(problems)}")
    return Converted("xdncnn-2018", {}, renamed, "kligvasser/xUnit 2018 xDnCNN state dict")
