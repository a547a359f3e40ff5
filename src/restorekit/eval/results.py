"""What a benchmark measured, as data: models, sets, cells (model × set × σ), skipped and failed
combinations, the crops it restored; written to and read back from ``results.json`` / ``results.csv``.

Pure data and files: nothing here runs a model, so the report reads results without importing what
measured them.
"""

from __future__ import annotations

import csv
import dataclasses
import io as _io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import RestoreKitError

__all__ = ["ModelEntry", "SetEntry", "Cell", "Skip", "BenchmarkResults", "CELL_VERSION", "CSV_COLUMNS",
           "write_results", "load_results", "format_summary", "made_for_sigma", "at_own_sigma"]

CELL_VERSION = 1


@dataclass
class ModelEntry:
    label: str
    spec: str  # as given: a path or a built-in name
    path: str  # the weights file
    sha256: str
    arch: str
    task: str
    channels: int
    params: int
    source_file: str = ""  # the official file a converted checkpoint came from
    protocol: str = ""  # the architecture's own metric convention ("": its task's)


@dataclass
class SetEntry:
    name: str
    path: str
    paired: bool
    channels: int
    images: int
    fingerprint: str


@dataclass
class Cell:
    key: str
    model: str
    set: str
    sigma: float | None
    protocol: str
    mean: dict[str, float]
    images: list[dict[str, Any]]
    speed_mp_s: float | None  # megapixels restored per second of network time (first image = warm-up, excluded)
    timing: str  # "forward" (network forward passes) or "wall" (whole loop: hooks saw no forward)
    device: str
    environment: dict[str, Any]
    settings: dict[str, Any]
    created: str
    version: int = CELL_VERSION
    reused: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("reused")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Cell":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Skip:
    model: str
    set: str
    sigma: float | None
    reason: str


@dataclass
class BenchmarkResults:
    out_dir: Path
    models: list[ModelEntry]
    sets: list[SetEntry]
    cells: list[Cell]
    skipped: list[Skip]
    failed: list[Skip]
    notes: list[str]
    environment: dict[str, Any]
    settings: dict[str, Any]
    crops: list[dict[str, Any]] = field(default_factory=list)

    @property
    def computed(self) -> int:
        return sum(not c.reused for c in self.cells)

    @property
    def reused(self) -> int:
        return sum(c.reused for c in self.cells)

    def model(self, label: str) -> ModelEntry:
        return next(m for m in self.models if m.label == label)

    def groups(self) -> list[tuple[str, float | None]]:
        """(set, σ) pairs with at least one cell, in the order of the sets and σ given."""
        seen: list[tuple[str, float | None]] = []
        for s in self.sets:
            sigmas = sorted({c.sigma for c in self.cells if c.set == s.name}, key=lambda v: -1 if v is None else v)
            seen += [(s.name, sig) for sig in sigmas]
        return seen

    def cells_of(self, set_name: str, sigma: float | None) -> list[Cell]:
        order = {m.label: i for i, m in enumerate(self.models)}
        return sorted((c for c in self.cells if c.set == set_name and c.sigma == sigma), key=lambda c: order.get(c.model, 0))

    def reference(self, cell: Cell, kind: str = "paper") -> Any:
        """The published (or independently measured) result matching a cell, or None."""
        from .published import is_known, published_value

        m = self.model(cell.model)
        names = [n for n in (m.label, m.spec, m.source_file) if n]
        # The architecture's numbers (e.g. DnCNN-S as reported by xUnit) only for weights the table does
        # not know: sigma=25.mat at σ=50 must not be compared with a σ=50 model's result.
        if not any(is_known(n) for n in names):
            names.append(m.arch)
        for name in names:
            found = published_value(name, cell.set, cell.sigma, kind=kind)
            if found is not None:
                return found
        return None

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per cell: our mean beside the published and re-measured values."""
        out = []
        for set_name, sigma in self.groups():
            for c in self.cells_of(set_name, sigma):
                m = self.model(c.model)
                pub, meas = self.reference(c, "paper"), self.reference(c, "measured")
                out.append({
                    "model": c.model, "weights": m.spec, "arch": m.arch, "params": m.params, "set": c.set,
                    "sigma": c.sigma, "protocol": c.protocol, "images": len(c.images),
                    "psnr": c.mean["psnr"], "ssim": c.mean["ssim"],
                    "input_psnr": c.mean["input_psnr"], "input_ssim": c.mean["input_ssim"],
                    "published_psnr": pub.psnr if pub else None, "published_ssim": pub.ssim if pub else None,
                    "delta_psnr": c.mean["psnr"] - pub.psnr if pub else None,
                    "published_source": pub.source if pub else "",
                    "measured_psnr": meas.psnr if meas else None,
                    "delta_measured": c.mean["psnr"] - meas.psnr if meas else None,
                    "speed_mp_s": c.speed_mp_s, "device": c.device, "reused": c.reused,
                })
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CELL_VERSION,
            "environment": self.environment,
            "settings": self.settings,
            "models": [asdict(m) for m in self.models],
            "sets": [asdict(s) for s in self.sets],
            "summary": self.rows(),
            "cells": [c.to_dict() for c in self.cells],
            "skipped": [asdict(s) for s in self.skipped],
            "failed": [asdict(s) for s in self.failed],
            "notes": self.notes,
            "crops": self.crops,
        }


CSV_COLUMNS = ("model", "weights", "arch", "params", "set", "sigma", "protocol", "images", "psnr", "ssim",
               "input_psnr", "input_ssim", "published_psnr", "published_ssim", "delta_psnr", "measured_psnr",
               "delta_measured", "speed_mp_s", "device")


def write_results(results: BenchmarkResults) -> tuple[Path, Path]:
    """``results.json`` (everything, per image too) and ``results.csv`` (one row per cell), atomically."""
    from ..io.files import atomic_write_text

    out = results.out_dir
    j = atomic_write_text(out / "results.json", json.dumps(results.to_dict(), indent=1, default=str) + "\n")
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in results.rows():
        writer.writerow({k: ("" if v is None else f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    c = atomic_write_text(out / "results.csv", buf.getvalue())
    return j, c


def load_results(out_dir: str | Path) -> BenchmarkResults:
    """A finished benchmark read back from ``out_dir/results.json`` (e.g. to redraw its report)."""
    out_dir = Path(out_dir)
    path = out_dir / "results.json"
    if not path.is_file():
        raise RestoreKitError(f"{out_dir}: no results.json (not a benchmark folder)")
    d = json.loads(path.read_text(encoding="utf-8"))
    return BenchmarkResults(
        out_dir=out_dir, models=[ModelEntry(**m) for m in d["models"]], sets=[SetEntry(**s) for s in d["sets"]],
        cells=[Cell.from_dict(c) for c in d["cells"]], skipped=[Skip(**s) for s in d["skipped"]],
        failed=[Skip(**s) for s in d["failed"]], notes=d.get("notes", []), environment=d["environment"],
        settings=d["settings"], crops=d.get("crops", []))


def format_summary(results: BenchmarkResults) -> str:
    """A console table of the means with the published values beside them."""
    lines = [f"{'model':<22} {'set':<10} {'σ':>4} {'PSNR':>8} {'SSIM':>7} {'published':>9} {'Δ':>7} {'MP/s':>8}"]
    for r in results.rows():
        sigma = "-" if r["sigma"] is None else f"{r['sigma']:g}"
        pub = "" if r["published_psnr"] is None else f"{r['published_psnr']:.2f}"
        delta = "" if r["delta_psnr"] is None else f"{round(r['delta_psnr'], 2) + 0.0:+.2f}"
        speed = "" if r["speed_mp_s"] is None else f"{r['speed_mp_s']:.3g}"
        lines.append(f"{r['model'][:22]:<22} {r['set'][:10]:<10} {sigma:>4} {r['psnr']:8.3f} {r['ssim']:7.4f} "
                     f"{pub:>9} {delta:>7} {speed:>8}")
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for kind, items in (("skipped", results.skipped), ("failed", results.failed)):
        for s in items:
            key = (kind, f"{s.model} × {s.set}", s.reason)
            grouped.setdefault(key, []).extend([] if s.sigma is None else [f"{s.sigma:g}"])
    for (kind, what, reason), sigmas in grouped.items():
        at = f" (σ {', '.join(sigmas)})" if sigmas else ""
        lines.append(f"{kind}: {what}{at}: {reason}")
    lines.append(f"{len(results.cells)} cells ({results.reused} reused, {results.computed} computed), "
                 f"{len(results.skipped)} skipped, {len(results.failed)} failed → {results.out_dir / 'report.html'}")
    return "\n".join(lines)


# Which noise level a model was made for, so that a report shows each model where it is meant to be used
# (a σ-specific DnCNN-S, sigma=25.mat, at σ 25 only; a blind model at every σ) and the crops compare
# those models. Read from its names: sigma=25, σ25, s25, DnCNN-S-25, dncnn_25.pth; none: blind.
_SIGMA_PATTERNS = (
    re.compile(r"sigma\s*[=_-]?\s*(\d{1,3}(?:\.\d+)?)"),
    re.compile(r"σ\s*=?\s*(\d{1,3}(?:\.\d+)?)"),
    re.compile(r"(?:^|[/_.-])s[-_]?(\d{2})(?=$|[/_.-])"),  # dncnn-s25, DnCNN-S-25, xdncnn_…_s25.pkl, s25
    re.compile(r"^dncnn_(\d{1,2})(?=\.|$)"),  # KAIR's dncnn_25.pth
)


def made_for_sigma(model: ModelEntry) -> float | None:
    """The σ (0-255 scale) the model's names say it was trained for; None: blind, or not a Gaussian
    denoiser."""
    for name in (model.label, model.source_file, model.spec):
        if not name:
            continue
        text = str(name).lower()
        if "blind" in text:
            return None
        for candidate in (text, PurePosixPath(text.replace("\\", "/")).name):
            for pattern in _SIGMA_PATTERNS:
                found = pattern.search(candidate)
                if found:
                    return float(found.group(1))
    return None


def at_own_sigma(model: ModelEntry, sigma: float | None) -> bool:
    """Whether a cell at ``sigma`` (None: a paired set) is one the model was made for."""
    own = made_for_sigma(model)
    return own is None or sigma is None or abs(own - sigma) < 1e-6
