"""The tables of a benchmark's report as display strings, shared by the HTML and Markdown renderers."""

from __future__ import annotations

import json
import math
from typing import Any

from ..eval.results import BenchmarkResults, Cell, at_own_sigma, made_for_sigma

__all__ = ["Table", "group_title", "overview_table", "summary_table", "protocol_notes", "per_image_table",
           "models_table", "skipped_table", "settings_items", "environments", "own_sigma_cells", "CELLS"]

CELLS = ("all", "matched", "mismatched")


class Table:
    """Display strings by row, with the cells to emphasise (best value of a group) and, optionally, a
    second line for a cell (``sub``: column → text) that the HTML shows small under the value."""

    def __init__(self, headers: list[str], numeric: set[int] | None = None) -> None:
        self.headers = headers
        self.rows: list[list[str]] = []
        self.bold: list[set[int]] = []
        self.sub: list[dict[int, str]] = []
        self.numeric = numeric or set()

    def add(self, row: list[str], bold: set[int] | None = None, sub: dict[int, str] | None = None) -> None:
        self.rows.append(row)
        self.bold.append(bold or set())
        self.sub.append(sub or {})


def fmt_value(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞"
    if signed:
        return f"{round(value, digits) + 0.0:+.{digits}f}"  # + 0.0: no "-0.00"
    return f"{value:.{digits}f}"


def _sigma(sigma: float | None) -> str:
    return "—" if sigma is None else f"{sigma:g}"


def group_title(set_name: str, sigma: float | None) -> str:
    return set_name if sigma is None else f"{set_name} σ={sigma:g}"


def fmt_params(n: int | None) -> str:
    if not n:
        return "—"
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.0f} K"


def _mixed_protocols(cells: list[Cell]) -> bool:
    return len({c.protocol for c in cells}) > 1


def own_sigma_cells(results: BenchmarkResults, cells: list[Cell] | None = None) -> list[Cell]:
    """The cells (of ``cells``, default all) at the σ their model was made for (every cell of a blind model)."""
    return [c for c in (results.cells if cells is None else cells) if at_own_sigma(results.model(c.model), c.sigma)]


def _made_for(results: BenchmarkResults, model: str) -> str:
    own = made_for_sigma(results.model(model))
    return "blind (any σ)" if own is None else f"σ={own:g}"


def overview_table(results: BenchmarkResults) -> Table:
    """The first thing to read: one row per model, one column per set (and σ) with the model's mean
    PSNR there and, under it (``sub``), its difference to the published value. A σ-specific model
    appears only at its σ; blind models at every σ. The best of each column (among models measured
    alike) is marked."""
    gaussian = any(sigma is not None for _, sigma in results.groups())
    matched = own_sigma_cells(results)
    groups = [g for g in results.groups() if any((c.set, c.sigma) == g for c in matched)]
    head = ["model"] + (["made for"] if gaussian else []) + [group_title(*g) for g in groups] + ["params"]
    first = 2 if gaussian else 1
    t = Table(head, numeric=set(range(first, len(head))))
    by_key = {(c.model, c.set, c.sigma): c for c in matched}
    best: dict[tuple[str, float | None, str], float] = {}
    size: dict[tuple[str, float | None, str], int] = {}
    for c in matched:
        g = (c.set, c.sigma, c.protocol)
        best[g] = max(best.get(g, -math.inf), c.mean["psnr"])
        size[g] = size.get(g, 0) + 1
    shown = [m for m in results.models if any(c.model == m.label for c in results.cells)]
    for m in shown:
        row = [m.label] + ([_made_for(results, m.label)] if gaussian else [])
        bold: set[int] = set()
        sub: dict[int, str] = {}
        for i, (set_name, sigma) in enumerate(groups):
            c = by_key.get((m.label, set_name, sigma))
            if c is None:
                row.append("—")
                continue
            pub = results.reference(c)
            notes = [f"Δ {fmt_value(c.mean['psnr'] - pub.psnr, 2, True)}"] if pub is not None else []
            if _mixed_protocols(results.cells_of(set_name, sigma)):
                notes.append(c.protocol)
            if notes:
                sub[first + i] = " · ".join(notes)
            g = (c.set, c.sigma, c.protocol)
            if size[g] > 1 and c.mean["psnr"] == best[g]:
                bold.add(first + i)
            row.append(fmt_value(c.mean["psnr"], 3))
        row.append(fmt_params(m.params))
        t.add(row, bold, sub)
    return t


def summary_table(results: BenchmarkResults, cells: str = "all") -> Table:
    """Mean PSNR/SSIM per model × set × σ, beside the published and independently re-measured values.
    When the models were measured with different protocols, a protocol column shows which, and the best
    value is marked only among rows measured alike. ``cells``: "all", "matched" (each model at the σ it
    was made for) or "mismatched" (σ-specific models at other σ)."""
    if cells not in CELLS:
        raise ValueError(f"cells must be one of {', '.join(CELLS)}, not {cells!r}")
    mixed = _mixed_protocols(results.cells)
    head = ["model", "set", "σ"] + (["protocol"] if mixed else []) + [
        "PSNR", "SSIM", "published", "Δ", "re-measured", "Δ", "input PSNR", "params", "MP/s", "device"]
    shift = 1 if mixed else 0
    t = Table(head, numeric={2} | {i + shift for i in range(3, 12)})
    rows = results.rows()
    if cells != "all":
        want = cells == "matched"
        rows = [r for r in rows if at_own_sigma(results.model(r["model"]), r["sigma"]) == want]
    best: dict[tuple[str, Any, str], float] = {}
    size: dict[tuple[str, Any, str], int] = {}
    for r in rows:
        g = (r["set"], r["sigma"], r["protocol"])
        best[g] = max(best.get(g, -math.inf), r["psnr"])
        size[g] = size.get(g, 0) + 1
    for r in rows:
        g = (r["set"], r["sigma"], r["protocol"])
        pub = fmt_value(r["published_psnr"]) + (f" / {r['published_ssim']:.4f}" if r["published_ssim"] else "")
        t.add([r["model"], r["set"], _sigma(r["sigma"])] + ([r["protocol"]] if mixed else []) + [
               fmt_value(r["psnr"], 3), fmt_value(r["ssim"], 4), pub,
               fmt_value(r["delta_psnr"], 2, True), fmt_value(r["measured_psnr"], 3), fmt_value(r["delta_measured"], 3, True),
               fmt_value(r["input_psnr"]), fmt_params(r["params"]), fmt_value(r["speed_mp_s"], 3), r["device"]],
              bold={3 + shift} if size[g] > 1 and r["psnr"] == best[g] else set())
    return t


def protocol_notes(results: BenchmarkResults) -> list[str]:
    """A warning for each set whose models were measured with different metric protocols."""
    notes = []
    for set_name, sigma in results.groups():
        cells = results.cells_of(set_name, sigma)
        if _mixed_protocols(cells):
            by: dict[str, list[str]] = {}
            for c in cells:
                by.setdefault(c.protocol, []).append(c.model)
            which = "; ".join(f"{p} for {', '.join(ms)}" for p, ms in by.items())
            notes.append(f"{group_title(set_name, sigma)}: the models were measured with different metric protocols "
                         f"({which}), each its paper's, so their numbers do not compare directly; pass "
                         "--protocol NAME to measure all of them alike")
    return notes


def per_image_table(results: BenchmarkResults, set_name: str, sigma: float | None) -> Table:
    cells = results.cells_of(set_name, sigma)
    mixed = _mixed_protocols(cells)
    t = Table(["image"] + [f"{c.model} PSNR / SSIM" + (f" ({c.protocol})" if mixed else "") for c in cells]
              + ["input PSNR" + (f" ({cells[0].protocol})" if mixed else "")],
              numeric=set(range(1, len(cells) + 2)))
    by_model = [{r["name"]: r for r in c.images} for c in cells]
    names = [r["name"] for r in cells[0].images] if cells else []
    for name in names:
        vals = [m.get(name) for m in by_model]
        psnrs = [v["psnr"] if v else -math.inf for v in vals]
        top = max(psnrs)
        row = [name] + [f"{v['psnr']:.3f} / {v['ssim']:.4f}" if v else "—" for v in vals]
        row.append(fmt_value(vals[0]["input_psnr"]) if vals and vals[0] else "—")
        t.add(row, bold={i + 1 for i, p in enumerate(psnrs) if p == top and len(cells) > 1 and not mixed})
    mean = ["mean"] + [f"{c.mean['psnr']:.3f} / {c.mean['ssim']:.4f}" for c in cells]
    mean.append(fmt_value(cells[0].mean["input_psnr"]) if cells else "—")
    t.add(mean)
    return t


def models_table(results: BenchmarkResults) -> Table:
    t = Table(["label", "weights", "architecture", "task", "channels", "parameters", "sha256"], numeric={4, 5})
    for m in results.models:
        t.add([m.label, m.spec + (f" (from {m.source_file})" if m.source_file else ""), m.arch, m.task,
               str(m.channels), f"{m.params:,}", m.sha256[:12]])
    return t


def skipped_table(results: BenchmarkResults) -> Table:
    t = Table(["model", "set", "σ", "why"])
    for s in results.skipped:
        t.add([s.model, s.set, _sigma(s.sigma), "skipped: " + s.reason])
    for s in results.failed:
        t.add([s.model, s.set, _sigma(s.sigma), "failed: " + s.reason])
    return t


def settings_items(results: BenchmarkResults) -> list[tuple[str, str]]:
    s = results.settings
    protocols = sorted({f"{c.model}: {c.protocol}" for c in results.cells})
    inference = ", ".join(f"{k}={v}" for k, v in s.get("inference", {}).items()) or "defaults"
    return [
        ("protocol", s.get("protocol") or "each model's own (its paper's, else its task's): " + "; ".join(protocols)),
        ("noise", f"σ ∈ {{{', '.join(f'{x:g}' for x in s.get('sigmas', []))}}} on the 0–255 scale, seeded per image "
                  f"name (seed {s.get('seed', 0)}), {s.get('repeats', 1)} draw(s) per image, "
                  f"{'clipped' if s.get('clip_noise') else 'not clipped'}"),
        ("crop border", str(s.get("crop_border", 0))),
        ("inference", inference),
        ("speed", "megapixels restored per second of network forward time, first image of each cell excluded "
                  "(warm-up)"),
        ("cells", f"{len(results.cells)} ({results.reused} reused from earlier runs, {results.computed} computed now)"),
    ]


def environments(results: BenchmarkResults) -> list[tuple[dict[str, Any], int]]:
    """The distinct environments (hardware, versions) that produced the cells, with their cell counts."""
    seen: dict[str, tuple[dict[str, Any], int]] = {}
    for c in results.cells:
        key = json.dumps(c.environment, sort_keys=True)
        env, n = seen.get(key, (c.environment, 0))
        seen[key] = (env, n + 1)
    return list(seen.values()) or [(results.environment, 0)]
