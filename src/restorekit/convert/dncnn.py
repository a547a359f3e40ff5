"""DnCNN's three official layouts: the MatConvNet release (.mat, v7.3/HDF5), SaoYan/DnCNN-PyTorch's
DataParallel state dict (trained form, BN) and KAIR's conversion (folded, biased convs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..errors import RestoreKitError
from . import Converted, register_mat_converter, register_pth_converter

_GRAY_NAMES = {17: "dncnn-s-folded", 20: "dncnn-b-folded"}


def _folded_arch(depth: int, channels: int, path: Path) -> str:
    if "dncnn3" in path.name.lower() and depth == 20 and channels == 1:
        return "dncnn3-folded"
    if channels == 3 and depth == 20:
        return "cdncnn-b-folded"
    if depth in _GRAY_NAMES:
        return _GRAY_NAMES[depth]
    raise RestoreKitError(f"{path}: DnCNN with {depth} layers has no registered variant (17 or 20)")


def _mat_string(f: Any, ds: Any) -> str:
    return "".join(chr(c) for c in ds[()].ravel())


@register_mat_converter("matconvnet-dncnn")
def from_matconvnet(f: Any, path: Path) -> Converted | None:
    if "net" not in f or "layers" not in f["net"]:
        return None
    refs = f["net"]["layers"]
    convs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i in range(refs.shape[0]):
        layer = f[refs[i][0]]
        kind = _mat_string(f, layer["type"])
        if kind == "relu":
            continue
        if kind != "conv":
            raise RestoreKitError(f"{path}: MatConvNet layer {i} of type {kind!r} (expected conv and relu only)")
        weight = torch.from_numpy(f[layer["weights"][0][0]][()].copy())
        bias = torch.from_numpy(f[layer["weights"][1][0]][()].copy()).reshape(-1)
        if weight.ndim == 3:  # MATLAB drops a trailing singleton dimension: the last conv's Cout = 1
            weight = weight.unsqueeze(0)
        # h5py reads MATLAB's column-major H×W×Cin×Cout as Cout×Cin×W×H
        convs.append((weight.permute(0, 1, 3, 2).contiguous().float(), bias.float()))
    if len(convs) < 3:
        return None
    channels = convs[0][0].shape[1]
    arch = _folded_arch(len(convs), channels, path)
    state = {}
    for n, (w, b) in enumerate(convs):
        state[f"body.{2 * n}.weight"], state[f"body.{2 * n}.bias"] = w, b
    return Converted(arch, {"channels": channels}, state, "MatConvNet DnCNN (.mat v7.3)")


_SAOYAN = re.compile(r"^dncnn\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
_KAIR = re.compile(r"^model\.(\d+)\.(weight|bias)$")


@register_pth_converter("dncnn-pytorch")
def from_saoyan(state: dict[str, torch.Tensor], path: Path) -> Converted | None:
    if not state or not all(_SAOYAN.match(k) for k in state):
        return None
    if not any(k.endswith("running_mean") for k in state):
        return None
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        out["body." + key[len("dncnn."):]] = value
    for key in [k for k in out if k.endswith("running_mean")]:
        nbt = key.replace("running_mean", "num_batches_tracked")
        out.setdefault(nbt, torch.tensor(0, dtype=torch.long))  # saved with PyTorch < 0.4
    convs = sorted({int(_SAOYAN.match(k).group(1)) for k in state if k.endswith("weight") and state[k].ndim == 4})
    depth = len(convs)
    channels = state[f"dncnn.{convs[0]}.weight"].shape[1]
    has_bias = f"dncnn.{convs[1]}.bias" in state
    if has_bias:
        if depth == 17 and channels == 3:
            return Converted("dncnn-color", {"channels": 3}, out, "DnCNN-PyTorch state dict (biased convs + BN)")
        raise RestoreKitError(f"{path}: DnCNN-PyTorch layout with biased convs and depth {depth}: no registered variant")
    names = {17: "dncnn-s", 20: "dncnn-b" if channels == 1 else "cdncnn-b"}
    if depth not in names:
        raise RestoreKitError(f"{path}: DnCNN-PyTorch layout with {depth} layers: no registered variant (17 or 20)")
    return Converted(names[depth], {"channels": channels}, out, "SaoYan/DnCNN-PyTorch state dict")


@register_pth_converter("kair-dncnn")
def from_kair(state: dict[str, torch.Tensor], path: Path) -> Converted | None:
    if not state or not all(_KAIR.match(k) for k in state):
        return None
    indices = sorted({int(_KAIR.match(k).group(1)) for k in state})
    if indices != list(range(0, 2 * len(indices), 2)):
        return None
    channels = state["model.0.weight"].shape[1]
    arch = _folded_arch(len(indices), channels, path)
    out = {"body." + k[len("model."):]: v for k, v in state.items()}
    return Converted(arch, {"channels": channels}, out, "KAIR DnCNN state dict")
