"""kligvasser/xUnit generator checkpoints (``g_xdncnn``, ``g_dncnn``): ``torch.save(g_model.state_dict())``.

Keys are ``image_to_features.*``, ``features.N.*`` and ``features_to_image.*``; our ``xdncnn-ref`` /
``dncnn-ref`` modules use the same names, so only the sizes are read and the tensors pass through.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..models import create_model
from . import Converted, register_pth_converter

_XUNIT_DW = "image_to_features.xunit.features.0.weight"
_BLOCK = re.compile(r"features\.(\d+)\.")


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
