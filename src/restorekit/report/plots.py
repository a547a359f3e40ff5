"""Scatter plots of a benchmark (PSNR against parameters or speed) and training curves, as PNGs.

Figures are bare ``matplotlib.figure.Figure`` objects rendered with Agg: no pyplot, no display, no
global state shared with the caller.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

__all__ = ["scatter_panels", "scatter_figure", "save_figure"]


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    from ..io.files import atomic_write

    return atomic_write(path, lambda p: fig.savefig(p, dpi=dpi, format="png"))


_MARKERS = "osD^vPX<>p*h"


def scatter_figure(panels: dict[str, list[tuple[str, float, float]]], *, xlabel: str, logx: bool | None = None,
                   title: str = "") -> Any:
    """The figure of :func:`scatter_panels`, or None when no panel has a point. Points are told apart by
    colour and marker, named once in a legend under the panels: labels beside close points would overlap."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    panels = {k: [p for p in v if p[1] is not None and p[1] > 0 and math.isfinite(p[2])] for k, v in panels.items()}
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    labels = list(dict.fromkeys(p[0] for v in panels.values() for p in v))
    legend_rows = math.ceil(len(labels) / min(len(labels), 4))
    fig = Figure(figsize=(4.2 * cols, 3.1 * rows + 0.35 * legend_rows + (0.4 if title else 0)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    # Hollow, in three sizes: equal results (a conversion of the same weights) show as concentric markers
    # instead of one hiding the other.
    style = {lab: (f"C{i % 10}", _MARKERS[i % len(_MARKERS)], (130.0, 75.0, 40.0)[i % 3]) for i, lab in enumerate(labels)}
    handles: dict[str, Any] = {}
    for ax, (name, points) in zip(axes.flat, panels.items()):
        xs = [p[1] for p in points]
        log = logx if logx is not None else max(xs) / min(xs) > 20  # a log axis over a narrow range has crowded labels
        for label, x, y in points:
            colour, marker, size = style[label]
            handles[label] = ax.scatter([x], [y], marker=marker, s=size, facecolors="none", edgecolors=colour,
                                        linewidths=1.6, zorder=3)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.xaxis.set_major_formatter(FuncFormatter(_short_number))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        _pad_limits(ax, xs, [p[2] for p in points], log)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("PSNR (dB)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center", ncols=min(len(labels), 4),
               fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def scatter_panels(panels: dict[str, list[tuple[str, float, float]]], *, xlabel: str, out: str | Path,
                   logx: bool | None = None, title: str = "") -> Path | None:
    """One small scatter per panel (e.g. per set and σ) of (label, x, PSNR) points, written to ``out``
    as a PNG; None when no panel has a point. ``logx`` None: a log x axis when x spans more than 20×."""
    fig = scatter_figure(panels, xlabel=xlabel, logx=logx, title=title)
    return None if fig is None else save_figure(fig, out)


def _short_number(value: float, _pos: Any = None) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _pad_limits(ax: Any, xs: Sequence[float], ys: Sequence[float], logx: bool) -> None:
    # Single points or equal values would give a zero-width axis; widen it so that the points stay inside.
    lo, hi = min(xs), max(xs)
    if logx:
        ax.set_xlim(lo / 1.5, hi * 1.5)
    else:
        span = (hi - lo) or abs(hi) * 0.2 or 1.0
        ax.set_xlim(max(0.0, lo - 0.25 * span) if lo >= 0 else lo - 0.25 * span, hi + 0.25 * span)
    ylo, yhi = min(ys), max(ys)
    yspan = (yhi - ylo) or 0.5
    ax.set_ylim(ylo - 0.3 * yspan, yhi + 0.3 * yspan)
