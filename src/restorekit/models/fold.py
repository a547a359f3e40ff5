"""Fold BatchNorm into the preceding convolution, for inference and for the released DnCNN layout."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every Conv2d directly followed by a BatchNorm2d inside a Sequential by one biased conv.

    Outputs are unchanged in eval mode (to float rounding). Works for any model built from Sequentials;
    models with other structures keep their BatchNorms.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return model


def fold_dncnn(model: nn.Module) -> nn.Module:
    """A trained-form DnCNN as the released layout (``dncnn-s-folded`` etc.): biased convs and ReLUs only."""
    from .dncnn import DnCNN
    from .registry import create_model

    if not isinstance(model, DnCNN):
        raise TypeError("fold_dncnn takes a DnCNN")
    fused = fold_batchnorm(model)
    convs = [m for m in fused.body if isinstance(m, nn.Conv2d)]
    name = _folded_name(model)
    out = create_model(name, channels=model.channels) if name else DnCNN(model.channels, model.depth, convs[0].out_channels, batch_norm=False, bias=True)
    targets = [m for m in out.body if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for src, dst in zip(convs, targets):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias if src.bias is not None else torch.zeros_like(dst.bias))
    return out.eval()


def _folded_name(model: nn.Module) -> str | None:
    info = getattr(model, "info", None)
    folded = {"dncnn-s": "dncnn-s-folded", "dncnn-b": "dncnn-b-folded", "cdncnn-b": "cdncnn-b-folded"}
    return folded.get(info.name) if info is not None else None
