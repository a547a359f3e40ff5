"""Learning-rate schedules as pure functions of the step.

The rate depends only on the step (never on a counter that is stepped), so a resumed run gets the
same rate as an uninterrupted one without any scheduler state to restore.
"""

from __future__ import annotations

import bisect
import math

from ..errors import RestoreKitError
from .config import ScheduleConfig


class Schedule:
    """``factor(step)`` multiplies the base learning rate.

    With ``unit: epoch``, milestones, warm-up and lengths count epochs and the rate changes at
    epoch boundaries; ``steps_per_epoch`` converts.
    """

    def __init__(self, cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int, base_lr: float) -> None:
        self.cfg = cfg
        self.base_lr = base_lr
        self.per_unit = steps_per_epoch if cfg.unit == "epoch" else 1
        self.total_units = max(1, math.ceil(total_steps / self.per_unit))
        if cfg.name in ("cosine", "warmup-cosine") and cfg.length is not None and cfg.length < 1:
            raise RestoreKitError(f"schedule.length must be >= 1, got {cfg.length}")
        if sorted(cfg.milestones) != list(cfg.milestones):
            raise RestoreKitError(f"schedule.milestones must be increasing, got {cfg.milestones}")

    def factor(self, step: int) -> float:
        c = self.cfg
        t = step // self.per_unit
        if c.name == "constant":
            return 1.0
        if c.name == "multistep":
            return c.gamma ** bisect.bisect_right(c.milestones, t)
        if c.name == "step":
            return c.gamma ** (t // c.step_size)  # type: ignore[operator]
        warmup = c.warmup if c.name == "warmup-cosine" else 0
        if t < warmup:
            # MPRNet's GradualWarmupScheduler: base·(e+1)/warmup in warm-up epoch e.
            return (t + 1) / warmup
        length = c.length or max(1, self.total_units - warmup)
        progress = min(1.0, (t - warmup) / length)
        floor = c.eta_min / self.base_lr if self.base_lr else 0.0
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def lr(self, step: int) -> float:
        return self.base_lr * self.factor(step)
