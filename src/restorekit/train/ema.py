"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A shadow copy of ``model`` with ``shadow = d·shadow + (1−d)·weights`` after each update.

    ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates: without this warm-up a 0.999 shadow
    would still hold three quarters of the random initial weights after 250 steps. Floating-point parameters and buffers are averaged; integer buffers (BatchNorm's batch count)
    are copied. The shadow is what validation sees and what a checkpoint's default weights are.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        source = model.state_dict()
        for key, value in self.module.state_dict().items():
            new = source[key].detach()
            if value.dtype.is_floating_point:
                value.lerp_(new.to(value.dtype), 1.0 - decay)
            else:
                value.copy_(new)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"])
