"""A training run's report: loss / PSNR / SSIM / learning-rate curves from ``metrics.csv``, the
checkpoints' metadata, the config, and a grid of the sample restorations saved during training."""

from __future__ import annotations

import csv
import json
import math
import re
import struct
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RestoreKitError
from .draw import font, rgb8
from .html import figure, page, table
from .tables import Table

__all__ = ["report_run", "read_metrics", "plot_curves", "sample_grid"]

MAX_SAMPLES = 12


def read_metrics(path: str | Path) -> list[dict[str, float | None]]:
    """Rows of ``metrics.csv`` as floats (empty or unparsable cells → None)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, float | None] = {}
            for key, value in raw.items():
                if key is None:
                    continue
                try:
                    row[key] = float(value) if value not in (None, "") else None
                except ValueError:
                    row[key] = None
            if row.get("step") is not None:
                rows.append(row)
    return rows


def _series(rows: list[dict[str, float | None]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None and math.isfinite(r[key])]  # type: ignore[arg-type]
    return [p[0] for p in pts], [p[1] for p in pts]  # type: ignore[misc]


def plot_curves(rows: list[dict[str, float | None]], out: str | Path) -> Path:
    """Training loss, validation PSNR and SSIM, and learning rate against the step, in one PNG."""
    from matplotlib.figure import Figure

    from .plots import save_figure

    fig = Figure(figsize=(11, 7))
    axes = fig.subplots(2, 2)
    specs = [("loss", "training loss", True, "-"), ("val_psnr", "validation PSNR (dB)", False, "o-"),
             ("val_ssim", "validation SSIM", False, "o-"), ("lr", "learning rate", True, "-")]
    for ax, (key, title, logy, style) in zip(axes.flat, specs):
        xs, ys = _series(rows, key)
        if xs:
            ax.plot(xs, ys, style, lw=0.9, ms=3)
            if logy and min(ys) > 0:
                ax.set_yscale("log")
            if key == "val_psnr":
                best = int(np.argmax(ys))
                ax.annotate(f"best {ys[best]:.2f} dB", (xs[best], ys[best]), xytext=(0, -14),
                            textcoords="offset points", ha="center", fontsize=8)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="0.5")
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out)


def _step_of(path: Path) -> int:
    m = re.search(r"(\d+)", path.stem)
    return int(m.group(1)) if m else -1


def sample_grid(paths: list[Path], out: str | Path, *, width: int = 320, columns: int = 3) -> Path:
    """Sample images (evenly spaced over training, the last always kept) in a labelled grid PNG."""
    from PIL import Image, ImageDraw

    from ..io import read_image
    from ..io.files import atomic_write

    paths = sorted(paths, key=_step_of)
    if len(paths) > MAX_SAMPLES:
        idx = np.unique(np.linspace(0, len(paths) - 1, MAX_SAMPLES).round().astype(int))
        paths = [paths[i] for i in idx]
    tiles = []
    for p in paths:
        im = Image.fromarray(rgb8(read_image(p).pixels))
        scale = min(1.0, width / im.size[0])
        if scale < 1.0:
            im = im.resize((width, max(1, round(im.size[1] * scale))), Image.Resampling.LANCZOS)
        tiles.append((f"step {_step_of(p)}", im))
    tw = max(t.size[0] for _, t in tiles)
    th = max(t.size[1] for _, t in tiles)
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    cap, pad = 20, 6
    canvas = Image.new("RGB", (cols * (tw + pad) + pad, rows * (th + cap + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    face = font()
    for i, (label, im) in enumerate(tiles):
        x = pad + (i % cols) * (tw + pad)
        y = pad + (i // cols) * (th + cap + pad)
        canvas.paste(im, (x, y))
        draw.text((x, y + th + 3), label, fill="black", font=face)
    return atomic_write(out, lambda p: canvas.save(p, format="PNG"))


def _checkpoint_metadata(path: Path) -> dict[str, Any]:
    """The restorekit metadata in a safetensors file's header ({} when there is none). Read here, not
    with :mod:`restorekit.checkpoints`, which builds models: a report only reads files."""
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100_000_000:
                return {}
            header = json.loads(fh.read(n))
        meta = json.loads(header.get("__metadata__", {}).get("restorekit", "{}"))
    except (OSError, ValueError, struct.error, AttributeError, TypeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _checkpoints(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, {"size": path.stat().st_size, **_checkpoint_metadata(path)})
            for path in sorted(run_dir.glob("*.safetensors"))]


def report_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) with its PNGs beside it: curves, the latest samples
    (``samples/step_*.png``, input | output | target, written at each validation) and the grid of them
    over training, the checkpoints and the config. Returns the HTML path."""
    from ..io.files import atomic_write_text

    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    if not run_dir.is_dir():
        raise RestoreKitError(f"{run_dir}: no such run folder")
    if not metrics.is_file():
        raise RestoreKitError(f"{run_dir}: no metrics.csv (not a restorekit training run folder)")
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise RestoreKitError(f"{out}: the run report is written as .html")
    rows = read_metrics(metrics)
    parts = [f"<h1>Training run {escape(run_dir.name)}</h1>"]
    if rows:
        last = rows[-1]
        xs, ps = _series(rows, "val_psnr")
        best = f", best validation PSNR {max(ps):.3f} dB at step {xs[int(np.argmax(ps))]:.0f}" if ps else ""
        elapsed = f", {last['time']:.0f} s" if last.get("time") is not None else ""
        parts.append(f'<p class="meta">{len(rows)} logged rows, last step {last["step"]:.0f}{elapsed}{best}.</p>')
        curves = plot_curves(rows, out.with_name("report-curves.png"))
        parts += ["<h2>Curves</h2>", figure(curves, "loss, validation PSNR / SSIM and learning rate against the step",
                                           css_class="plot")]
    else:
        parts.append('<p class="meta">metrics.csv has no rows yet.</p>')
    samples = sorted((run_dir / "samples").glob("step_*.png"), key=_step_of) if (run_dir / "samples").is_dir() else []
    if samples:
        latest = samples[-1]
        parts += [f"<h2>Samples at step {_step_of(latest)}</h2>",
                  figure(latest, "validation images at the latest validation; columns: input | output | target",
                         alt=f"samples at step {_step_of(latest)}")]
    if len(samples) > 1:
        grid = sample_grid(samples, out.with_name("report-samples.png"))
        parts += ["<h2>Samples over training</h2>", figure(grid, f"{len(samples)} sample images saved; "
                                                                 f"up to {MAX_SAMPLES} shown, evenly spaced")]
    ckpts = _checkpoints(run_dir)
    if ckpts:
        t = Table(["file", "size", "step", "epoch", "val PSNR", "val SSIM", "best PSNR", "weights"], numeric={1, 2, 3, 4, 5, 6})
        for name, m in ckpts:
            def num(key: str, fmt: str) -> str:
                v = m.get(key)
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    return "—"
                return f"{int(v)}" if fmt == "d" else format(v, fmt)
            t.add([name, f"{m['size'] / 1e6:.1f} MB", num("step", "d"), num("epoch", "d"), num("val_psnr", ".3f"),
                   num("val_ssim", ".4f"), num("best_psnr", ".3f"), str(m.get("weights", "—"))])
        parts += ["<h2>Checkpoints</h2>", table(t)]
    config = run_dir / "config.yaml"
    if config.is_file():
        parts += ["<h2>Config</h2>", f"<pre>{escape(config.read_text(encoding='utf-8'))}</pre>"]
    return atomic_write_text(out, page(f"run {run_dir.name}", "\n".join(parts)))
