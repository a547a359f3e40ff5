"""Run logging: ``metrics.csv``, TensorBoard scalars, ``curves.png`` and ``train.log``.

Only the main process creates a :class:`RunLogger` that writes; other ranks get a silent one. On
resume the CSV keeps the rows up to the resumed step (a killed run may have logged past its last
checkpoint), so the curves of a resumed run look like those of an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..io.files import atomic_write

COLUMNS = ("step", "epoch", "loss", "lr", "val_psnr", "val_ssim", "time")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class RunLogger:
    """Writes the run's logs under ``run_dir`` when ``enabled``; a no-op otherwise."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.csv_path = self.run_dir / "metrics.csv"
        self.rows: list[dict[str, str]] = []
        self._tb: Any = None
        if not enabled:
            return
        if resume_step is not None and self.csv_path.is_file():
            # a killed run may have left half a line at the end: keep complete lines only
            lines = [ln for ln in self.csv_path.read_text().splitlines(keepends=True) if ln.endswith("\n")]
            self.rows = [r for r in csv.DictReader(lines) if r.get("step") and int(r["step"]) <= resume_step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.csv_path, lambda p: Path(p).write_bytes(buf.getvalue().encode()))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)", stacklevel=2)
            else:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resume_step)

    def message(self, text: str) -> None:
        """A line on the console (above the progress bar) and in ``train.log``."""
        if not self.enabled:
            return
        tqdm.write(text)
        self._append(text)

    def warning(self, text: str) -> None:
        """A ``warning:`` line on stderr (above the progress bar) and in ``train.log``."""
        if not self.enabled:
            return
        tqdm.write(f"warning: {text}", file=sys.stderr)
        self._append(f"warning: {text}")

    def _append(self, line: str) -> None:
        with open(self.run_dir / "train.log", "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def log(self, step: int, epoch: int, **values: float | None) -> None:
        """One CSV row (missing columns empty) and the matching TensorBoard scalars."""
        if not self.enabled:
            return
        row = {"step": str(step), "epoch": str(epoch), **{k: _fmt(values.get(k)) for k in COLUMNS[2:]}}
        self.rows.append(row)
        with open(self.csv_path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=COLUMNS).writerow(row)
        if self._tb is not None:
            for key, value in values.items():
                if value is not None and key != "time" and math.isfinite(value):
                    self._tb.add_scalar(f"{'val' if key.startswith('val_') else 'train'}/{key}", value, step)

    def plot(self) -> None:
        """Refresh ``curves.png``: training loss and validation PSNR against the step."""
        if not self.enabled or not self.rows:
            return
        # A bare Figure renders with Agg and skips pyplot (slow to import, global state, display).
        from matplotlib.figure import Figure

        def series(key: str) -> tuple[list[int], list[float]]:
            pts = [(int(r["step"]), float(r[key])) for r in self.rows if r.get(key)]
            return [p[0] for p in pts], [p[1] for p in pts]

        fig = Figure(figsize=(10, 4))
        ax_loss, ax_psnr = fig.subplots(1, 2)
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9, wspace=0.25)
        xs, ys = series("loss")
        ax_loss.plot(xs, ys, lw=0.8)
        if ys and min(ys) > 0:
            ax_loss.set_yscale("log")
        ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
        xs, ys = series("val_psnr")
        ax_psnr.plot(xs, ys, marker="o", ms=3)
        ax_psnr.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR")
        for ax in (ax_loss, ax_psnr):
            ax.grid(alpha=0.3)
        atomic_write(self.run_dir / "curves.png", lambda p: fig.savefig(p, dpi=100))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
