"""DnCNN's three official layouts: the MatConvNet release (.mat, v7.3/HDF5), SaoYan/DnCNN-PyTorch's
DataParallel state dict (trained form, BN) and KAIR's conversion (folded, biased convs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..errors import RestoreKitError
from .base import Converted, register_mat_converter, register_pth_converter

_GRAY_NAMES = {17: "dncnn-s-folded", 20: "dncnn-b-folded"}


def _folded_arch(depth: int, channels: int, features: int, path: Path) -> tuple[str, dict[str, Any]]:
    """The released (folded) variant by depth and channels; any other layout is the generic ``dncnn``."""
    if features == 64:
        if "dncnn3" in path.name.lower() and depth == 20 and channels == 1:
            return "dncnn3-folded", {"channels": 1}
        if channels == 3 and depth == 20:
            return "cdncnn-b-folded", {"channels": 3}
        if depth in _GRAY_NAMES:
            return _GRAY_NAMES[depth], {"channels": channels}
    return "dncnn", {"channels": channels, "depth": depth, "features": features, "batch_norm": False, "bias": True}


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
    arch, args = _folded_arch(len(convs), convs[0][0].shape[1], convs[0][0].shape[0], path)
    state = {}
    for n, (w, b) in enumerate(convs):
        state[f"body.{2 * n}.weight"], state[f"body.{2 * n}.bias"] = w, b
    return Converted(arch, args, state, "MatConvNet DnCNN (.mat v7.3)")


_SAOYAN = re.compile(r"^dncnn\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
_KAIR = re.compile(r"^model\.(\d+)\.(weight|bias)$")
_KAIR_BN = re.compile(r"^model\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


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
    first = state[f"dncnn.{convs[0]}.weight"]
    arch, args = _trained_arch(len(convs), first.shape[1], first.shape[0], f"dncnn.{convs[1]}.bias" in state)
    return Converted(arch, args, out, "SaoYan/DnCNN-PyTorch state dict")


# Trained-form (BN) variants by (depth, channels, biased convs); any other layout is the generic "dncnn".
_TRAINED = {(17, 1, False): "dncnn-s", (20, 1, False): "dncnn-b", (20, 3, False): "cdncnn-b",
            (9, 1, False): "dncnn-9", (17, 3, True): "dncnn-color"}


def _trained_arch(depth: int, channels: int, features: int, bias: bool) -> tuple[str, dict[str, Any]]:
    name = _TRAINED.get((depth, channels, bias))
    if name is not None and features == 64:
        return name, {"channels": channels}
    return "dncnn", {"channels": channels, "depth": depth, "features": features, "batch_norm": True, "bias": bias}


@register_pth_converter("kair-dncnn")
def from_kair(state: dict[str, torch.Tensor], path: Path) -> Converted | None:
    if not state or not all(_KAIR.match(k) for k in state):
        return None
    indices = sorted({int(_KAIR.match(k).group(1)) for k in state})
    if indices != list(range(0, 2 * len(indices), 2)):
        return None
    first = state["model.0.weight"]
    arch, args = _folded_arch(len(indices), first.shape[1], first.shape[0], path)
    out = {"body." + k[len("model."):]: v for k, v in state.items()}
    return Converted(arch, args, out, "KAIR DnCNN state dict")


@register_pth_converter("kair-dncnn-bn")
def from_kair_trained(state: dict[str, torch.Tensor], path: Path) -> Converted | None:
    """KAIR's DnCNN as it trains (``act_mode='BR'``): conv+ReLU, (depth−2)×[conv, BN, ReLU], conv, flattened
    into one Sequential, so its indices are restorekit's; convs with or without bias. Its BatchNorm has
    eps 1e-4 (SaoYan's and the named variants' 1e-5 would shift every output), so it is always the
    generic ``dncnn``. BN is kept (the inference path folds it)."""
    if not state or not all(_KAIR_BN.match(k) for k in state) or not any(k.endswith("running_mean") for k in state):
        return None
    convs = sorted({int(_KAIR_BN.match(k).group(1)) for k in state if k.endswith("weight") and state[k].ndim == 4})
    expected = [0] + [2 + 3 * i for i in range(len(convs) - 1)]
    if convs != expected:
        return None
    out = {"body." + k[len("model."):]: v for k, v in state.items()}
    for key in [k for k in out if k.endswith("running_mean")]:
        out.setdefault(key.replace("running_mean", "num_batches_tracked"), torch.tensor(0, dtype=torch.long))
    first = state["model.0.weight"]
    args = {"channels": first.shape[1], "depth": len(convs), "features": first.shape[0], "batch_norm": True,
            "bias": "model.2.bias" in state, "bn_eps": 1e-4}
    return Converted("dncnn", args, out, "KAIR DnCNN state dict (trained form, BN)")
