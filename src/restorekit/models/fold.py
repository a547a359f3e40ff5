"""Fold BatchNorm into the preceding convolution (inference, export, and the released layouts)."""

from __future__ import annotations

import copy

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
