"""Scatter plots of a benchmark (PSNR against parameters or speed) and training curves, as PNGs.

Figures are bare ``matplotlib.figure.Figure`` objects rendered with Agg: no pyplot, no display, no
global state shared with the caller.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

__all__ = ["scatter_panels", "save_figure"]


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    from ..io.files import atomic_write

    return atomic_write(path, lambda p: fig.savefig(p, dpi=dpi, format="png"))


def scatter_panels(panels: dict[str, list[tuple[str, float, float]]], *, xlabel: str, out: str | Path,
                   logx: bool = True, title: str = "") -> Path | None:
    """One small scatter per panel (e.g. per set and σ) of (label, x, PSNR) points, each point
    named; None when no panel has a point."""
    from matplotlib.figure import Figure

    panels = {k: [p for p in v if p[1] is not None and p[1] > 0 and math.isfinite(p[2])] for k, v in panels.items()}
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * rows + (0.4 if title else 0)))
    axes = fig.subplots(rows, cols, squeeze=False)
    labels = sorted({p[0] for v in panels.values() for p in v})
    colours = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    for ax, (name, points) in zip(axes.flat, panels.items()):
        for label, x, y in points:
            ax.scatter([x], [y], color=colours[label], s=36, zorder=3)
            ax.annotate(label, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7)
        if logx:
            ax.set_xscale("log")
        _pad_limits(ax, [p[1] for p in points], [p[2] for p in points], logx)
        ax.set(title=name, xlabel=xlabel, ylabel="PSNR (dB)")
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def _pad_limits(ax: Any, xs: Sequence[float], ys: Sequence[float], logx: bool) -> None:
    # Single points or equal values would give a zero-width axis; widen it so labels stay readable.
    lo, hi = min(xs), max(xs)
    if logx:
        ax.set_xlim(lo / 2.0, hi * 2.0)
    else:
        span = (hi - lo) or abs(hi) or 1.0
        ax.set_xlim(lo - 0.2 * span, hi + 0.4 * span)
    ylo, yhi = min(ys), max(ys)
    yspan = (yhi - ylo) or 0.5
    ax.set_ylim(ylo - 0.3 * yspan, yhi + 0.3 * yspan)
