"""Training: typed configs, one readable loop, schedules, EMA, DDP and run logging.

``train(...)`` is what ``restorekit train`` calls; see ``docs/training.md``.
"""

from .config import TrainConfig, build_config, config_diff, parse_override
from .loop import Interrupted, Trainer, train

__all__ = ["Interrupted", "TrainConfig", "Trainer", "build_config", "config_diff", "parse_override", "train"]
