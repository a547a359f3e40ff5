"""Self-contained HTML pages: inline CSS, images as ``data:`` URIs, nothing fetched (a Content Security
Policy forbids it), so a report opens offline and survives being mailed as one file."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from ..eval.results import BenchmarkResults
from .tables import (
    Table,
    environments,
    group_title,
    models_table,
    overview_table,
    own_sigma_cells,
    per_image_table,
    settings_items,
    skipped_table,
    summary_table,
)

__all__ = ["render", "page", "table", "data_uri", "figure"]

# The page fits a 1400 px window: main is narrower than that, and what could be wider (tables, code,
# long values) scrolls or wraps inside its own box instead of widening the page.
CSS = """
:root { color-scheme: light; --fg: #1d232b; --muted: #5b6673; --line: #d9dee4; --head: #f2f4f7; --accent: #0b63b6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
main { max-width: 1340px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; }
p.meta, .muted { color: var(--muted); }
p, li, dd, figcaption, summary { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; white-space: nowrap; }
th { background: var(--head); font-weight: 600; white-space: normal; min-width: 5.5em; vertical-align: bottom; }
td.num, th.num { text-align: right; }
td.best { font-weight: 700; color: var(--accent); }
td .sub { display: block; font-size: 11px; font-weight: 400; color: var(--muted); }
tbody tr:nth-child(even) { background: #fafbfc; }
details { margin: 6px 0; } summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
figure { margin: 12px 0 24px; } figcaption { color: var(--muted); margin-top: 4px; }
img { max-width: 100%; height: auto; image-rendering: pixelated; }
img.plot { image-rendering: auto; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 4px 16px; } dt { font-weight: 600; } dd { margin: 0; }
ul.notes li { color: var(--muted); }
code { overflow-wrap: anywhere; }
pre { background: var(--head); padding: 10px; overflow-x: auto; border-radius: 4px; white-space: pre-wrap; }
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def page(title: str, body: str, *, extra_css: str = "") -> str:
    """A complete HTML document around ``body`` (already HTML)."""
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}{extra_css}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def data_uri(source: str | Path | bytes, mime: str = "image/png") -> str:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure(src: str | Path | bytes, caption: str = "", *, alt: str = "", css_class: str = "") -> str:
    cls = f' class="{css_class}"' if css_class else ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img{cls} src="{data_uri(src)}" alt="{escape(alt or caption)}">{cap}</figure>'


def table(t: Table) -> str:
    head = "".join(f'<th{" class=num" if i in t.numeric else ""}>{escape(h)}</th>' for i, h in enumerate(t.headers))
    body = []
    subs = t.sub + [{}] * (len(t.rows) - len(t.sub))  # rows appended without add() have none
    for row, bold, sub in zip(t.rows, t.bold, subs):
        tds = []
        for i, v in enumerate(row):
            cls = " ".join(c for c in ("num" if i in t.numeric else "", "best" if i in bold else "") if c)
            attr = f' class="{cls}"' if cls else ""
            second = f'<span class="sub">{escape(sub[i])}</span>' if i in sub else ""
            tds.append(f"<td{attr}>{escape(v)}{second}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _dl(items: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items) + "</dl>"


def _details(summary: str, inner: str) -> str:
    return f"<details><summary>{summary}</summary>{inner}</details>"


def render(results: BenchmarkResults, plots: dict[str, str], crops: list[dict[str, Any]], *, generated: str,
           notes: list[str]) -> str:
    """The page: first the summary (each model at the σ it was made for), then everything else, the
    tables collapsed; ``crops`` are the crop strips drawn (:func:`restorekit.report.crops.draw_crops`)."""
    out = results.out_dir
    matched = own_sigma_cells(results)
    n_other = len(results.cells) - len(matched)
    parts = ["<h1>restorekit benchmark</h1>",
             f'<p class="meta">Generated {escape(generated)} · {len(results.models)} models · {len(results.sets)} sets · '
             f"{len(results.cells)} cells ({results.reused} reused, {results.computed} computed)</p>"]
    if results.cells:
        gaussian = any(c.sigma is not None for c in results.cells)
        parts += ["<h2>Summary</h2>",
                  "<p>Mean PSNR (dB) over each set; under it, Δ = ours − published. "
                  + ("Each model is shown at the noise level it was made for: a σ-specific model (σ read from its "
                     "name, e.g. <code>sigma=25.mat</code>) at its σ only, a blind model at every σ. "
                     if gaussian else "")
                  + "The best of each column is marked. Every cell, with SSIM, published and re-measured values and "
                    "speed, is in the tables below.</p>",
                  table(overview_table(results))]
    else:
        parts.append("<p>No cells were evaluated.</p>")
    all_notes = results.notes + notes
    if all_notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in all_notes) + "</ul>")
    if results.settings.get("command"):
        parts.append(f'<p class="meta">Produced by <code>{escape(results.settings["command"])}</code> (run it again to '
                     "update it: finished cells are reused)</p>")
    if results.cells:
        parts += ["<h2>All cells</h2>",
                  "<p>Δ = ours − published. <em>Re-measured</em>: the same weights measured with an independent script "
                  "(agreement within ~0.01 dB expected).</p>",
                  _details(f"Each model at the σ it was made for — {len(matched)} cells",
                           table(summary_table(results, "matched")))]
        if n_other:
            parts.append(_details(f"σ-specific models at another σ than they were made for — {n_other} cells",
                                  table(summary_table(results, "mismatched"))))
    if results.skipped or results.failed:
        parts.append(_details(f"Skipped combinations — {len(results.skipped) + len(results.failed)}",
                              table(skipped_table(results))))
    if results.cells:
        parts.append("<h2>Per image</h2>")
        for set_name, sigma in results.groups():
            n = len(results.cells_of(set_name, sigma)[0].images)
            parts.append(_details(f"{escape(group_title(set_name, sigma))} — {n} images",
                                  table(per_image_table(results, set_name, sigma))))
    if crops:
        parts += ["<h2>Where the models differ most</h2>",
                  "<p>For each set and σ, among the models at the σ they were made for: the image whose PSNR varies "
                  "most between them, and the window where the best and the worst of them differ most (their local "
                  "PSNR spread, weighted by the error the worse one adds there, so that the difference can be seen), "
                  "zoomed with nearest neighbour. The PSNR under each tile is measured on the crop.</p>"]
        for c in crops:
            w = c.get("window", {})
            caption = (f"<strong>{escape(group_title(c['set'], c['sigma']))}</strong>, image <code>{escape(c['image'])}</code>, "
                       f"window {w.get('size')}² at (y={w.get('y')}, x={w.get('x')}), zoom ×{c.get('zoom')}")
            parts.append(figure(out / c["png"], caption, alt=f"crops of {c['image']}"))
    if plots:
        parts += ["<h2>PSNR against size and speed</h2>",
                  "<p>Each model at the σ it was made for.</p>"]
        for title, path in plots.items():
            parts.append(figure(out / path, escape(title), css_class="plot"))
    parts += ["<h2>Models</h2>",
              _details(f"{len(results.models)} models: weights, architecture, parameters, sha256",
                       table(models_table(results))),
              "<h2>Settings</h2>", _dl(settings_items(results)), "<h2>Hardware and versions</h2>"]
    for env, n in environments(results):
        parts += [f"<h3>{n} cells measured on</h3>", _dl([(k, str(v)) for k, v in env.items()])]
    return page("restorekit benchmark", "\n".join(parts))
