"""Official MPRNet checkpoints (swz30/MPRNet: model_deblurring.pth, model_denoising.pth, model_deraining.pth).

The files are ``{'epoch', 'state_dict', 'optimizer'}`` dicts of an ``nn.DataParallel`` model (the
common reader unwraps them). Keys already match restorekit's module names, except the one shared
PReLU: the reference lists it under every CAB (``….body.1.weight``, 55 keys, one tensor), restorekit
holds it once as ``act.weight``. The aliases must all be equal; anything else is a corrupt or edited
file and is refused rather than silently averaged.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import RestoreKitError
from ..models.mprnet import WIDTHS, MPRNet, prelu_alias_keys
from .base import Converted, register_pth_converter

_SIGNATURE = ("shallow_feat1.0.weight", "stage1_encoder.down12.down.1.weight", "concat23.weight",
              "sam12.conv2.weight", "stage3_orsnet.orb1.body.0.body.0.weight")


def _widths(sd: dict[str, torch.Tensor]) -> tuple[int, int, int] | None:
    first, down, concat23 = sd["shallow_feat1.0.weight"], sd["stage1_encoder.down12.down.1.weight"], sd["concat23.weight"]
    if first.ndim != 4 or down.ndim != 4 or concat23.ndim != 4:
        return None
    n_feat = first.shape[0]
    return n_feat, down.shape[0] - n_feat, concat23.shape[0] - n_feat


@register_pth_converter("mprnet")
def convert_mprnet(sd: dict[str, torch.Tensor], path: Path) -> Converted | None:
    if not all(k in sd for k in _SIGNATURE) or "act.weight" in sd:
        return None
    widths = _widths(sd)
    arch = next((name for name, w in WIDTHS.items() if w == widths), None)
    if arch is None:
        known = ", ".join(f"{n} {w}" for n, w in WIDTHS.items())
        raise RestoreKitError(
            f"{path}: MPRNet checkpoint with (n_feat, scale_unetfeats, scale_orsnetfeats) = {widths}, "
            f"not one of the official variants ({known})"
        )
    channels = sd["shallow_feat1.0.weight"].shape[1]

    # The key layout is fixed by the architecture; build it without allocating weights.
    with torch.device("meta"):
        aliases = prelu_alias_keys(MPRNet(channels, *WIDTHS[arch]))
    missing = [k for k in aliases if k not in sd]
    if missing:
        raise RestoreKitError(
            f"{path}: MPRNet checkpoint lacks {len(missing)} of the {len(aliases)} shared-PReLU keys "
            f"(first: {missing[0]})"
        )
    shared = sd[aliases[0]]
    differing = [k for k in aliases[1:] if sd[k].shape != shared.shape or not torch.equal(sd[k], shared)]
    if differing:
        raise RestoreKitError(
            f"{path}: the {len(aliases)} copies of MPRNet's shared PReLU disagree "
            f"({aliases[0]} vs {differing[0]}, {len(differing)} differ); the file is not an unmodified MPRNet checkpoint"
        )
    alias_set = set(aliases)
    state = {"act.weight": shared.clone()}
    state.update((k, v) for k, v in sd.items() if k not in alias_set)
    args = {} if channels == 3 else {"channels": channels}
    return Converted(arch, args, state, "MPRNet official checkpoint",
                     notes={"prelu_aliases_collapsed": len(aliases), "prelu": float(shared.flatten()[0])})
