"""A benchmark's report as Markdown, with its images as files under ``images/`` (GitHub renders the
``<details>`` blocks of the per-image tables as collapsible sections)."""

from __future__ import annotations

from typing import Any

from ..eval.results import BenchmarkResults
from .tables import (
    Table,
    environments,
    group_title,
    models_table,
    per_image_table,
    settings_items,
    skipped_table,
    summary_table,
)

__all__ = ["render", "table"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(t: Table) -> str:
    """A pipe table, numbers right-aligned, emphasised cells in bold."""
    lines = ["| " + " | ".join(_cell(h) for h in t.headers) + " |",
             "|" + "|".join("---:" if i in t.numeric else "---" for i in range(len(t.headers))) + "|"]
    for row, bold in zip(t.rows, t.bold):
        lines.append("| " + " | ".join(f"**{_cell(v)}**" if i in bold else _cell(v) for i, v in enumerate(row)) + " |")
    return "\n".join(lines)


def render(results: BenchmarkResults, plots: dict[str, str], crops: list[dict[str, Any]], *, generated: str,
           notes: list[str]) -> str:
    """The Markdown document; ``crops`` are the crop strips drawn (:func:`restorekit.report.crops.draw_crops`)."""
    out = ["# restorekit benchmark", "",
           f"Generated {generated}. Mean over each set; Δ = ours − published. "
           "Published values from `restorekit.eval.published`; *re-measured*: the same weights measured with an "
           "independent script (should agree within ~0.01 dB).", ""]
    if results.settings.get("command"):
        out += ["Produced by (run it again to update: finished cells are reused):", "", "```bash",
                results.settings["command"], "```", ""]
    out += ["## Results", "", table(summary_table(results)) if results.cells else "_No cells were evaluated._", ""]
    for n in results.notes + notes:
        out.append(f"- {n}")
    if results.notes or notes:
        out.append("")
    if results.skipped or results.failed:
        out += ["### Skipped combinations", "", table(skipped_table(results)), ""]
    if results.cells:
        out += ["## Per image", ""]
        for set_name, sigma in results.groups():
            n = len(results.cells_of(set_name, sigma)[0].images)
            out += ["<details>", f"<summary>{group_title(set_name, sigma)} — {n} images</summary>", "",
                    table(per_image_table(results, set_name, sigma)), "", "</details>", ""]
    if crops:
        out += ["## Where the models differ most", "",
                "Zoomed crops (nearest neighbour) of the image and window with the largest PSNR spread "
                "between models; PSNR of each tile measured on the crop.", ""]
        for c in crops:
            title = group_title(c["set"], c["sigma"])
            w = c.get("window", {})
            out += [f"**{title}**, image `{c['image']}`, window {w.get('size')}² at (y={w.get('y')}, x={w.get('x')}), "
                    f"zoom ×{c.get('zoom')}", "", f"![{title}]({c['png']})", ""]
    if plots:
        out += ["## PSNR against size and speed", ""]
        for title, path in plots.items():
            out += [f"![{title}]({path})", ""]
    out += ["## Models", "", table(models_table(results)), "", "## Settings", ""]
    out += [f"- **{k}**: {v}" for k, v in settings_items(results)]
    out += ["", "## Hardware and versions", ""]
    for env, n in environments(results):
        out.append(f"- {n} cells: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    out.append("")
    return "\n".join(out)
