"""huawei-noah/Pretrained-IPT checkpoints (``IPT_sr2.pt``, ``IPT_denoise30.pt``, …): ``model.state_dict()``.

Our ``models/ipt.py`` keeps the reference's module names, so the tensors pass through; only the
configuration is read from the shapes: tasks (heads) and their scales (tail upsampler convolutions),
``n_feats``, ``patch_dim``, ``patch_size`` (token count), ``num_layers``, ``num_queries`` and the
``no_norm``/``no_mlp``/``no_pos`` switches. ``num_heads`` and ``pos_every`` leave no trace in the weights
(12 heads and False assumed, as the reference's defaults). The reference loads with ``strict=False``;
here the strict loader names whatever does not fit.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from ..errors import RestoreKitError
from ..models.ipt import DIV2K_RGB_MEAN
from .base import Converted, register_pth_converter

_HEAD = re.compile(r"head\.(\d+)\.0\.weight$")
_LAYER = re.compile(r"body\.(encoder|decoder)\.layers\.(\d+)\.")
_SINGLE = {2: "ipt-sr-x2", 3: "ipt-sr-x3", 4: "ipt-sr-x4"}
_DEFAULTS = {"patch_size": 48, "patch_dim": 3, "n_feats": 64, "num_heads": 12, "num_layers": 12,
             "no_norm": False, "no_mlp": False, "no_pos": False, "rgb_range": 255.0, "attn_out_bias": False}


def _is_ipt(state: dict[str, torch.Tensor]) -> bool:
    return ("head.0.0.weight" in state and "body.encoder.layers.0.self_attn.in_proj_weight" in state
            and any(k.startswith(("sub_mean.", "add_mean.")) for k in state))


def _tail_scale(state: dict[str, torch.Tensor], i: int, n_feats: int) -> int:
    convs = [v for k, v in state.items() if re.fullmatch(rf"tail\.{i}\.0\.\d+\.weight", k)]
    if not convs:
        return 1
    outs = {int(v.shape[0]) for v in convs}
    if len(convs) == 1 and outs == {9 * n_feats}:
        return 3
    if outs == {4 * n_feats}:
        return 2 ** len(convs)
    raise RestoreKitError(f"IPT tail {i}: upsampler convolutions with {sorted(outs)} outputs fit no scale")


def _rgb_range(state: dict[str, torch.Tensor]) -> float:
    # MeanShift: weight = I/std, bias = sign·rgb_range·mean/std (sign −1 for sub_mean, +1 for add_mean).
    for name, sign in (("sub_mean", -1.0), ("add_mean", 1.0)):
        weight, bias = state.get(f"{name}.weight"), state.get(f"{name}.bias")
        if weight is not None and bias is not None and weight.numel() == 9 and bias.numel() == 3:
            diag = weight.float().reshape(3, 3).diagonal()
            if bool((diag != 0).all()):
                break
    else:
        return 255.0  # unreadable: the strict loader reports the MeanShift keys
    value = float((sign * bias.float() / diag / torch.tensor(DIV2K_RGB_MEAN)).mean())
    for common in (255.0, 1.0):
        if math.isclose(value, common, rel_tol=1e-3):
            return common
    return round(value, 4)


def _arch(scales: list[int], path: Path, notes: dict[str, object]) -> str:
    if scales == [2, 3, 4, 1, 1, 1]:
        return "ipt-pretrain"
    if len(scales) == 1 and scales[0] in _SINGLE:
        return _SINGLE[scales[0]]
    if scales == [1]:
        # Denoising and deraining models have identical shapes; the release names its files by task.
        name = path.name.lower()
        if "rain" in name:
            notes["task_from"] = "file name"
            return "ipt-derain"
        sigma = re.search(r"(?:denoise|noise|sigma|dn)[_-]?(\d+)", name)
        if sigma:
            notes["sigma"] = int(sigma.group(1))
        notes["task_from"] = "file name" if "noise" in name or sigma else "assumed (no task in the file name)"
        return "ipt-denoise"
    raise RestoreKitError(
        f"IPT checkpoint with {len(scales)} tasks of scales {scales}: restorekit has single-task variants "
        "(x2, x3, x4, scale 1) and the six-task pre-training model (2, 3, 4, 1, 1, 1)"
    )


@register_pth_converter("ipt")
def convert_ipt(state: dict[str, torch.Tensor], path: Path) -> Converted | None:
    if state and all(k.startswith("module.") for k in state):  # DataParallel, when called directly
        state = {k[len("module."):]: v for k, v in state.items()}
    if not _is_ipt(state):
        return None
    state = dict(state)
    notes: dict[str, object] = {}

    heads = sorted(int(m.group(1)) for k in state if (m := _HEAD.match(k)))
    if heads != list(range(len(heads))):
        raise RestoreKitError(f"IPT checkpoint with head indices {heads}: expected 0..{len(heads) - 1}")
    n_feats, colors = (int(s) for s in state["head.0.0.weight"].shape[:2])
    if colors != 3:
        raise RestoreKitError(f"IPT checkpoint for {colors}-channel images: restorekit's IPT is RGB only")
    scales = [_tail_scale(state, i, n_feats) for i in heads]

    dim = int(state["body.encoder.layers.0.self_attn.in_proj_weight"].shape[1])
    patch_dim = math.isqrt(dim // n_feats)
    if patch_dim * patch_dim * n_feats != dim:
        raise RestoreKitError(f"IPT body width {dim} is not n_feats {n_feats} × a square patch")
    layers = {part: {int(m.group(2)) for k in state if (m := _LAYER.match(k)) and m.group(1) == part}
              for part in ("encoder", "decoder")}
    if layers["encoder"] != layers["decoder"]:
        raise RestoreKitError(f"IPT checkpoint with {len(layers['encoder'])} encoder and "
                              f"{len(layers['decoder'])} decoder layers: the reference builds equal stacks")
    num_layers = len(layers["encoder"])

    no_norm = "body.encoder.layers.0.norm1.weight" not in state
    no_mlp = "body.linear_encoding.weight" not in state
    no_pos = "body.position_encoding.pe.weight" not in state
    if not no_pos:
        seq_length = int(state["body.position_encoding.pe.weight"].shape[0])
    elif not no_mlp:
        seq_length = int(state["body.query_embed.weight"].shape[1]) // dim
    else:
        seq_length = (_DEFAULTS["patch_size"] // patch_dim) ** 2
        notes["patch_size"] = "assumed (no position or query embedding to read it from)"
    side = math.isqrt(seq_length)
    if side * side != seq_length:
        raise RestoreKitError(f"IPT checkpoint with {seq_length} tokens: not a square grid of patches")
    if not no_pos and "body.position_encoding.position_ids" not in state:
        state["body.position_encoding.position_ids"] = torch.arange(seq_length).unsqueeze(0)

    out_bias = [k for k in state if re.search(r"(self_attn|multihead_attn)\.out_proj\.bias$", k)]
    attn_out_bias = False
    if out_bias:
        # Saved with PyTorch 1.6/1.7, whose attention always had an output bias; zero ones are dropped.
        if all(not state[k].any() for k in out_bias):
            for k in out_bias:
                del state[k]
            notes["dropped"] = f"{len(out_bias)} zero attention out_proj biases"
        else:
            attn_out_bias = True

    num_heads = next(h for h in range(12, 0, -1) if dim % h == 0)
    notes["num_heads"] = f"{num_heads} assumed (not recorded in the weights)"

    arch = _arch(scales, path, notes)
    args: dict[str, object] = {
        "patch_size": side * patch_dim, "patch_dim": patch_dim, "n_feats": n_feats, "num_heads": num_heads,
        "num_layers": num_layers, "no_norm": no_norm, "no_mlp": no_mlp, "no_pos": no_pos,
        "rgb_range": _rgb_range(state), "attn_out_bias": attn_out_bias,
    }
    args = {k: v for k, v in args.items() if v != _DEFAULTS[k]}
    if not no_mlp:
        queries = int(state["body.query_embed.weight"].shape[0])
        if queries != len(scales):
            args["num_queries"] = queries
    return Converted(arch, args, state, "Pretrained-IPT state_dict", notes)
