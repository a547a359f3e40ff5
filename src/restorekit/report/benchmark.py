"""A benchmark's report, drawn from its results: ``report.html`` (self-contained), ``report.md`` and
``images/`` (crop strips, plots) in the benchmark's folder. Nothing here measures or runs a model."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import RestoreKitError
from ..eval.results import BenchmarkResults, load_results
from ..io.files import atomic_write_text
from . import html, markdown
from .crops import draw_crops
from .plots import scatter_panels
from .tables import group_title, own_sigma_cells, protocol_notes
from .training import report_run

__all__ = ["write_report", "report_benchmark_dir", "report_folder"]


def _plots(results: BenchmarkResults) -> dict[str, str]:
    # Each model at the σ it was made for: a σ-specific model far from its σ would squash the others.
    by_params: dict[str, list[tuple[str, float, float]]] = {}
    by_speed: dict[str, list[tuple[str, float, float]]] = {}
    for set_name, sigma in results.groups():
        title = group_title(set_name, sigma)
        for c in own_sigma_cells(results, results.cells_of(set_name, sigma)):
            by_params.setdefault(title, []).append((c.model, float(results.model(c.model).params), c.mean["psnr"]))
            if c.speed_mp_s:
                by_speed.setdefault(title, []).append((c.model, c.speed_mp_s, c.mean["psnr"]))
    out = {}
    img = results.out_dir / "images"
    if scatter_panels(by_params, xlabel="parameters", out=img / "psnr-vs-params.png", title="PSNR vs parameters"):
        out["PSNR vs parameters"] = "images/psnr-vs-params.png"
    if scatter_panels(by_speed, xlabel="megapixels / s", out=img / "psnr-vs-speed.png", title="PSNR vs speed"):
        out["PSNR vs speed"] = "images/psnr-vs-speed.png"
    return out


def write_report(results: BenchmarkResults) -> dict[str, Path]:
    """Crop strips, plots, ``report.md`` and ``report.html`` in ``results.out_dir``, from the results
    alone (the crops are those the benchmark stored); returns the pages written."""
    notes = protocol_notes(results)
    crops, crop_notes = draw_crops(results)
    notes += crop_notes
    plots = _plots(results) if results.cells else {}
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    out = results.out_dir
    md = atomic_write_text(out / "report.md", markdown.render(results, plots, crops, generated=generated, notes=notes))
    page = atomic_write_text(out / "report.html", html.render(results, plots, crops, generated=generated, notes=notes))
    return {"html": page, "markdown": md}


def report_benchmark_dir(out_dir: str | Path) -> dict[str, Path]:
    """Redraw the report of a finished benchmark folder from its ``results.json``."""
    return write_report(load_results(out_dir))


def report_folder(path: str | Path, out: str | Path | None = None) -> Path:
    """The report of a benchmark folder (``results.json``) or a training run (``metrics.csv``); returns
    the HTML page written."""
    path = Path(path)
    if (path / "results.json").is_file():
        if out is not None:
            raise RestoreKitError("a benchmark's report is written inside its folder; drop -o")
        return report_benchmark_dir(path)["html"]
    if (path / "metrics.csv").is_file():
        return report_run(path, out)
    raise RestoreKitError(f"{path}: neither a benchmark folder (results.json) nor a training run (metrics.csv)")
