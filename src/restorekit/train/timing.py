"""How long a run will take here: seconds per step measured over its first steps, and the projection
(with a warning and shorter alternatives when it runs into days) printed before a long run."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Callable

LONG_RUN_HOURS = 24.0  # longer than this, the start of a run warns
SHORT_RUN_HOURS = 2.0  # the length of the shorter run that warning suggests


def now() -> float:
    """The clock steps are timed with (a module function, so that tests can replace it)."""
    return time.perf_counter()


class StepTimer:
    """Mean seconds per step over ``measure`` steps after ``warmup`` ones (the first steps allocate
    memory, fill caches and start the loader). Time a step with :meth:`start` before fetching its batch
    and :meth:`stop` after its update, so that validations and checkpoints between steps are not counted."""

    def __init__(self, *, warmup: int = 1, measure: int = 5, clock: Callable[[], float] | None = None) -> None:
        self.warmup, self.measure = warmup, measure
        self._clock = clock
        self._started: float | None = None
        self._timed: list[float] = []
        self._seen = 0
        self.done = False

    def _now(self) -> float:
        return self._clock() if self._clock is not None else now()

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> float | None:
        """End a step's timing; the mean seconds per step once, when the last measured step ends."""
        if self.done or self._started is None:
            return None
        elapsed, self._started = self._now() - self._started, None
        self._seen += 1
        if self._seen <= self.warmup:
            return None
        self._timed.append(elapsed)
        if len(self._timed) < self.measure:
            return None
        self.done = True
        return sum(self._timed) / len(self._timed)


@dataclass
class Projection:
    """What :func:`project` says: ``line`` always, ``warning`` when the run is long here."""

    line: str
    warning: str | None = None


def _hours(seconds: float) -> str:
    h = seconds / 3600
    if h >= 10:
        return f"{h:,.0f} h"
    if h >= 0.1:
        return f"{h:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _clock_time(when: dt.datetime, start: dt.datetime) -> str:
    return when.strftime("%H:%M") if when.date() == start.date() else when.strftime("%a %d %b %H:%M")


def _round_down(n: float) -> int:
    """Two significant digits, rounded down: 12,345 → 12,000."""
    if n < 1:
        return 1
    scale = 10 ** max(0, int(math.log10(n)) - 1)
    return max(1, int(n // scale) * scale)


def project(sec_per_step: float, *, started_at: int, step: int, total_steps: int, steps_per_epoch: int,
            max_minutes: float | None, wall_time: float, epochs: bool, cpu_variant: str | None,
            at: dt.datetime | None = None) -> Projection:
    """The projection, at ``step``, of a run of ``total_steps`` that this session started (or resumed)
    at step ``started_at`` and that takes ``sec_per_step`` here. The run's time budget ``max_minutes``
    (of which ``wall_time`` seconds are spent) ends it early; a run that still takes over
    :data:`LONG_RUN_HOURS` gets a warning that suggests ``cpu_variant`` (a recipe's CPU-sized variant,
    where there is one) or a ``train.steps`` that fits in :data:`SHORT_RUN_HOURS`."""
    at = at or dt.datetime.now()
    sec_per_step = max(sec_per_step, 1e-9)
    seconds = (total_steps - started_at) * sec_per_step  # this session's length
    to_go = max(0, total_steps - step) * sec_per_step
    stops_at = None
    if max_minutes is not None:
        budget_left = max(0.0, max_minutes * 60 - wall_time)
        if budget_left < to_go:
            stops_at = step + int(budget_left / sec_per_step) + 1
            seconds -= to_go - budget_left
            to_go = budget_left
    finish = _clock_time(at + dt.timedelta(seconds=to_go), at)
    rate = f"{sec_per_step:.3g} s/step here" if sec_per_step < 1000 else f"{sec_per_step:,.0f} s/step here"
    if started_at == 0:
        span = f"the {total_steps:,}-step run"
    else:
        span = f"the {total_steps - started_at:,} steps left of the {total_steps:,}-step run"
    if stops_at is not None:
        line = (f"{rate}: train.max_minutes={max_minutes:g} ends {span} at about step {stops_at:,}, after about "
                f"{_hours(seconds)} (finishing around {finish})")
    else:
        line = f"{rate}: {span} will take about {_hours(seconds)} (finishing around {finish})"
    if to_go <= LONG_RUN_HOURS * 3600:
        return Projection(line)
    fits = _round_down(SHORT_RUN_HOURS * 3600 / sec_per_step)
    steps = f"--set train.steps={started_at + fits}"
    if epochs:
        steps = f"--set train.epochs=null {steps}"
    if started_at:
        steps += " --allow-config-change"
    n_epochs = fits / steps_per_epoch
    epochs_note = f", {n_epochs:.2g} epoch{'' if n_epochs == 1 else 's'}" if epochs and n_epochs >= 1 else ""
    options = [f"`restorekit train --recipe {cpu_variant}` (its CPU-sized variant)"] if cpu_variant and not started_at else []
    options.append(f"{steps} (about {SHORT_RUN_HOURS:g} h {'more ' if started_at else ''}here{epochs_note})")
    days = to_go / 86400
    length = f"{days:.1f} days" if days >= 2 else _hours(to_go)
    warning = (f"{'this run' if not started_at else 'the rest of this run'} will take {length} on this device; "
               "for a shorter one use " + " or ".join(options))
    return Projection(line, warning)


__all__ = ["LONG_RUN_HOURS", "Projection", "SHORT_RUN_HOURS", "StepTimer", "now", "project"]
