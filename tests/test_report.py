"""Benchmark (resumable cells, results files, HTML/Markdown report), published numbers, image comparison
and training-run reports, on tiny synthetic sets and untrained models."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image

import restorekit as rk
from restorekit.checkpoints import save_checkpoint
from restorekit.errors import RestoreKitError
from restorekit.eval import datasets, evaluate
from restorekit.eval.benchmark import parse_model_spec, run_benchmark
from restorekit.eval.crops import pick_image, pick_window
from restorekit.eval.published import PUBLISHED, published_value
from restorekit.eval.results import (
    BenchmarkResults,
    Cell,
    ModelEntry,
    SetEntry,
    load_results,
)
from restorekit.report import compare_images, report_folder, report_run, write_report
from restorekit.report.crops import zoom_nearest


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Three gray 32² images in a folder named Set12, two colour ones, two gray models (one claiming to
    be a conversion of sigma=25.mat) and a colour model."""
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    gray, colour = root / "Set12", root / "colour"
    gray.mkdir()
    colour.mkdir()
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(3):
        img = 0.5 + 0.3 * np.sin(xx / (2 + i)) * np.cos(yy / 3) + 0.05 * rng.standard_normal((32, 32))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(gray / f"g{i}.png")
    for i in range(2):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(colour / f"c{i}.png")
    torch.manual_seed(0)
    a = save_checkpoint(root / "a.safetensors", rk.create_model("dncnn-s-folded"),
                        metadata={"source": {"file": "sigma=25.mat", "format": "matconvnet"}})
    torch.manual_seed(1)
    b = save_checkpoint(root / "b.safetensors", rk.create_model("dncnn-s-folded"))
    torch.manual_seed(2)
    c = save_checkpoint(root / "c.safetensors", rk.create_model("dncnn-color"))
    return {"root": root, "models": [str(a), f"bee={b}", str(c)], "sets": [str(gray), str(colour)]}


def _count_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = evaluate.iter_evaluation

    def counting(model, settings, options=None, *, progress=True):  # type: ignore[no-untyped-def]
        calls.append(f"{settings.data}:{settings.sigma}")
        return original(model, settings, options, progress=progress)

    monkeypatch.setattr(evaluate, "iter_evaluation", counting)
    return calls


def _run(data: dict[str, object], out: Path, **kw: object):  # type: ignore[no-untyped-def]
    return run_benchmark(data["models"], data["sets"], [25, 50], out, progress=False, **kw)  # type: ignore[arg-type]


class _Imgs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src") or "")
        if tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.external.append(f"{tag}: {a.get('href') or a.get('src')}")


def test_benchmark_writes_results_and_report(bench_data, tmp_path, monkeypatch) -> None:
    calls = _count_evaluations(monkeypatch)
    out = tmp_path / "out"
    res = _run(bench_data, out)
    assert not (out / "report.html").exists()  # the benchmark measures; the report is drawn from its results
    calls_before_report = len(calls)
    pages = write_report(res)
    assert len(calls) == calls_before_report  # drawing the report runs nothing
    assert pages == {"html": out / "report.html", "markdown": out / "report.md"}
    # gray models: Set12 × 2σ each; colour model: colour × 2σ; the other pairs are skipped.
    assert len(res.cells) == 6 and len(calls) == 6 and res.computed == 6
    assert sorted((s.model, s.set) for s in res.skipped) == sorted(
        [("a", "colour")] * 2 + [("bee", "colour")] * 2 + [("c", "Set12")] * 2)
    assert all("gray model on a colour set" in s.reason or "colour model on a gray set" in s.reason for s in res.skipped)
    assert len(list((out / "cells").glob("*.json"))) == 6

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 6
    pub = [r for r in rows if r["model"] == "a" and r["sigma"].startswith("25")]
    assert float(pub[0]["published_psnr"]) == pytest.approx(30.44)  # via the checkpoint's source file
    assert float(pub[0]["measured_psnr"]) == pytest.approx(30.445)
    assert all(float(r["speed_mp_s"]) > 0 for r in rows)
    assert all(c.timing == "forward" for c in res.cells)  # the network's own time was measured

    data = json.loads((out / "results.json").read_text())
    assert {c["model"] for c in data["cells"]} == {"a", "bee", "c"}
    assert all(len(c["images"]) in (2, 3) for c in data["cells"])
    assert data["environment"]["torch"] == torch.__version__

    page = (out / "report.html").read_text()
    parser = _Imgs()
    parser.feed(page)
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert not parser.external and "http://" not in page and "https://" not in page
    assert "<details>" in page and "gray model on a colour set" in page and "30.44" in page
    md = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert linked and all((out / p).is_file() for p in linked)
    assert (out / "images" / "psnr-vs-params.png").is_file() and (out / "images" / "psnr-vs-speed.png").is_file()
    # the crops the benchmark restored, stored as files and drawn by the report into one strip per group
    assert len(res.crops) == 4
    assert all((out / f).is_file() for c in res.crops for f in [c["context"]] + [t["file"] for t in c["tiles"]])
    assert json.loads((out / "results.json").read_text())["crops"] == res.crops
    assert len(list((out / "images").glob("crops-*.png"))) == 4


def test_benchmark_resumes_finished_cells(bench_data, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    first = _run(bench_data, out)
    calls = _count_evaluations(monkeypatch)
    import restorekit.eval.crops as crops

    monkeypatch.setattr(crops, "_restore", lambda *a, **k: pytest.fail("crops redrawn although nothing changed"))
    again = _run(bench_data, out)
    assert calls == [] and again.reused == 6 and again.computed == 0
    assert [c.mean for c in again.cells] == [c.mean for c in first.cells]
    assert report_folder(out) == out / "report.html"  # redrawn from results.json, crops from the cache

    # An interrupted run: one cell missing is the only one measured again.
    victim = first.cells[1]
    (out / "cells" / f"{victim.key}.json").unlink()
    monkeypatch.undo()
    calls = _count_evaluations(monkeypatch)
    third = _run(bench_data, out)
    assert len(calls) == 1 and third.computed == 1 and third.reused == 5

    calls.clear()
    _run(bench_data, out, resume=False)
    assert len(calls) == 6
    assert load_results(out).cells[0].key == first.cells[0].key


def test_model_specs_and_labels(bench_data) -> None:
    a = bench_data["models"][0]
    assert parse_model_spec(a) == (None, a)
    assert parse_model_spec(f"s25={a}") == ("s25", a)
    assert parse_model_spec("sigma=25.mat") == (None, "sigma=25.mat")  # official names contain "="
    with pytest.raises(RestoreKitError, match="sigma=25.mat"):
        run_benchmark(["sigma=25.mat"], bench_data["sets"], [25], "/nonexistent/never-written", progress=False)
    with pytest.raises(RestoreKitError):
        run_benchmark([a, a], bench_data["sets"], [25], "/nonexistent/never-written", progress=False)


def test_published_lookup() -> None:
    assert published_value("sigma=25.mat", "BSD68", 25).psnr == 29.23
    assert published_value("../shared/weights/dncnn-matconvnet/sigma=15.mat", "Set12", 15).psnr == 32.86
    assert published_value("sigma=50.mat", "Set12", 50, kind="measured").psnr == 27.193
    assert published_value("GD_Gray_Blind.mat", "BSD68", 50).psnr == 26.23
    assert published_value("GD_Gray_Blind.mat", "Set12", 25, kind="measured").psnr == 30.368
    assert [published_value("GD_Color_Blind.mat", "CBSD68", s).psnr for s in (15, 25, 50)] == [33.90, 31.24, 27.95]
    assert published_value("weights/dncnn-saoyan/DnCNN-S-25/net.pth", "BSD68", 25).psnr == 29.21
    assert published_value("dncnn_25.pth", "Set12", 25).psnr == 30.44  # KAIR's conversion of sigma=25.mat
    assert published_value("xdncnn", "BSD68", 50).psnr == 26.26
    # the built-in defaults are compared with their target, DnCNN-B / CDnCNN-B, not DnCNN-S
    assert [published_value("default-gray", "BSD68", s).psnr for s in (15, 25, 50)] == [31.61, 29.16, 26.23]
    assert published_value("default-color", "CBSD68", 25).model.startswith("CDnCNN-B")
    durn = published_value("durn-p", "BSD_gray", 50)
    assert (durn.psnr, durn.ssim, durn.protocol) == (26.36, 0.7355, "durn-gray")
    assert published_value("sigma=25.mat", "BSD68", 50) is None
    assert published_value("sigma=25.mat", "Kodak24", 25) is None


def test_published_durn_matches_the_authors_file() -> None:
    text = shared_path("data", "durn", "test", "results_confirmed.txt").read_text()
    found = re.findall(r"-\s*([^:\n]+):\s*([\d.]+)\s*/\s*([\d.]+)", text)
    assert len(found) == 13
    durn = [r for r in PUBLISHED if r.model.startswith("DuRN")]
    assert sorted((r.psnr, r.ssim) for r in durn) == sorted((float(p), float(s)) for _, p, s in found)


def test_crop_choice() -> None:
    target = np.full((64, 64, 1), 0.5, np.float32)
    good = target.copy()
    bad = target.copy()
    bad[40:52, 8:20] += 0.3  # the models differ only here
    y, x, s = pick_window([good, bad], target, size=16)
    assert y <= 40 and y + s >= 52 and x <= 8 and x + s >= 20
    assert pick_image({"a": {"i1": 30.0, "i2": 31.0}, "b": {"i1": 29.0, "i2": 25.0}}) == "i2"
    assert pick_image({"a": {"i1": 30.0, "i2": 28.0}}) == "i2"
    assert zoom_nearest(np.zeros((3, 5, 1)), 4).shape == (12, 20, 1)


def test_crops_are_where_the_difference_can_be_seen() -> None:
    rng = np.random.default_rng(0)
    target = np.full((160, 160, 1), 0.5, np.float32)
    target[:, 80:] += 0.3 * np.sin(np.arange(80) / 2.0)[None, :, None]  # texture on the right
    good = target + 0.002 * rng.standard_normal(target.shape).astype(np.float32)  # some error everywhere
    bad = target + 0.002 * rng.standard_normal(target.shape).astype(np.float32)
    # flat left: a large PSNR spread (about 12 dB) of errors too small to see (about 0.5/255 against 2/255)
    good[20:84, 10:74] = target[20:84, 10:74] + 0.0005 * rng.standard_normal((64, 64, 1))
    bad[20:84, 10:74] += 0.008 * rng.standard_normal((64, 64, 1))
    # textured right: a smaller spread (about 6 dB) of errors anyone sees (8/255 against 15/255)
    good[90:154, 90:154] += 0.03 * rng.standard_normal((64, 64, 1))
    bad[90:154, 90:154] += 0.06 * rng.standard_normal((64, 64, 1))
    y, x, s = pick_window([good, bad], target)
    assert s == 64 and 82 <= x <= 98 and 82 <= y <= 96  # the textured window, not the flat one
    y1, x1, _ = pick_window([bad], target)
    assert x1 >= 80 and y1 >= 80  # one model: its worst window


def test_the_sigma_a_model_was_made_for_is_read_from_its_names() -> None:
    from restorekit.eval.results import at_own_sigma, made_for_sigma

    def entry(label: str, spec: str = "w.safetensors", source: str = "") -> ModelEntry:
        return ModelEntry(label, spec, spec, "0" * 64, "dncnn-s-folded", "denoise", 1, 1, source)

    assert made_for_sigma(entry("sigma=15", "../w/sigma=15.mat", "sigma=15.mat")) == 15
    assert made_for_sigma(entry("mine", "mine.safetensors", "sigma=25.mat")) == 25  # a conversion names its source
    assert made_for_sigma(entry("net", "logs/DnCNN-S-50/net.pth")) == 50
    assert made_for_sigma(entry("kair", "dncnn_25.pth")) == 25
    assert made_for_sigma(entry("dncnn-s25-mat", "dncnn-s25-mat")) == 25
    assert made_for_sigma(entry("xunit", "xdncnn_res_f64k3k9_s50.pkl")) == 50
    for blind in (entry("GD_Gray_Blind", "GD_Gray_Blind.mat"), entry("default-gray", "default-gray"),
                  entry("bee", "runs/s3/last.safetensors"), entry("durn", "DuRN_P_no_norm_model.pt")):
        assert made_for_sigma(blind) is None and at_own_sigma(blind, 50)
    assert at_own_sigma(entry("s25"), 25) and not at_own_sigma(entry("s25"), 50) and at_own_sigma(entry("s25"), None)


class _Tables(HTMLParser):
    """Each <table> of a page, in order: whether it sits inside <details>, its parent's class, its header
    cells and its rows' cells; and where the first <details> opens."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.tables: list[dict[str, object]] = []
        self.first_details: int | None = None
        self.events = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events += 1
        if tag == "details" and self.first_details is None:
            self.first_details = self.events
        if tag == "table":
            self.tables.append({"in_details": any(t == "details" for t, _ in self.stack), "at": self.events,
                                "parent": self.stack[-1][1] if self.stack else "", "head": [], "rows": []})
        if tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])  # type: ignore[union-attr]
        if tag in ("th", "td"):
            self._cell = []
        self.stack.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None and self.tables:
            t = self.tables[-1]
            (t["head"] if tag == "th" else t["rows"][-1]).append("".join(self._cell).strip())  # type: ignore[index,union-attr]
            self._cell = None
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_report_page_leads_with_the_summary_and_collapses_the_rest(bench_data, tmp_path) -> None:
    res = _run(bench_data, tmp_path / "out")  # a: made for σ=25 (its source is sigma=25.mat); bee, c: blind
    page = write_report(res)["html"].read_text()
    parser = _Tables()
    parser.feed(page)
    first, *rest = parser.tables
    assert not first["in_details"] and parser.first_details is not None and first["at"] < parser.first_details
    assert first["head"] == ["model", "made for", "Set12 σ=25", "Set12 σ=50", "colour σ=25", "colour σ=50", "params"]
    rows = {r[0]: r for r in first["rows"][1:]}  # type: ignore[index]
    assert list(rows) == ["a", "bee", "c"]
    a25 = res.cells_of("Set12", 25.0)[0]
    assert rows["a"][1] == "σ=25" and rows["a"][2] == f"{a25.mean['psnr']:.3f}Δ {a25.mean['psnr'] - 30.44:+.2f}"
    assert rows["a"][3] == "—" and rows["a"][4:6] == ["—", "—"]  # not at σ=50: that cell is collapsed below
    assert rows["bee"][1] == "blind (any σ)" and all(v[0].isdigit() for v in rows["bee"][2:4])
    assert rows["c"][2:4] == ["—", "—"] and all(v[0].isdigit() for v in rows["c"][4:6])
    assert rest and all(t["in_details"] for t in rest)
    assert all(t["parent"] == "scroll" for t in parser.tables)  # each table scrolls inside its own box
    mismatched = next(t for t in rest if t["head"][:3] == ["model", "set", "σ"] and
                      all(r[2] == "50" for r in t["rows"][1:]))  # type: ignore[index]
    assert [r[0] for r in mismatched["rows"][1:]] == ["a"]  # type: ignore[index]
    assert "σ-specific models at another σ than they were made for — 1 cells" in page
    css = re.search(r"main \{[^}]*max-width: (\d+)px", page)
    assert css and int(css.group(1)) <= 1360 and "th {" in page and "white-space: normal" in page


def test_plot_labels_do_not_overlap(tmp_path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    from restorekit.report.plots import scatter_figure, scatter_panels

    # DnCNN variants: equal parameter counts, equal or close PSNRs (dncnn_25 is a conversion of sigma=25.mat);
    # labels beside the points would sit on top of each other
    points = [("sigma=25", 555_137, 30.440), ("dncnn_25", 555_137, 30.440), ("GD_Gray_Blind", 665_921, 30.368),
              ("default-gray", 556_032, 28.644), ("sigma=50", 555_137, 27.100), ("xdncnn", 303_000, 30.402),
              ("DnCNN-S-25", 555_137, 30.402)]
    names = [n for n, *_ in points]
    panels = {f"Set{k} σ={s}": [(n, x, y - 0.1 * j) for n, x, y in points]
              for j, (k, s) in enumerate((k, s) for k in (12, 68) for s in (15, 25, 50))}
    fig = scatter_figure(panels, xlabel="parameters", title="PSNR vs parameters")
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()

    def drawn(ax) -> list[Text]:  # tick labels outside the view limits exist but are not drawn
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        return ([ax.title, ax.xaxis.label, ax.yaxis.label] + list(ax.texts)
                + [t for t in ax.get_xticklabels() if x0 <= t.get_position()[0] <= x1]
                + [t for t in ax.get_yticklabels() if y0 <= t.get_position()[1] <= y1])

    texts = [t for ax in fig.axes if ax.get_visible() for t in drawn(ax)] + list(fig.legends[0].get_texts())
    texts += list(fig.texts)  # the suptitle
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if isinstance(t, Text) and t.get_text().strip()]
    assert len(boxes) > 6 * 3 + 7
    overlaps = [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]
    assert overlaps == []
    assert all(not ax.texts for ax in fig.axes)  # no point annotations
    assert [t.get_text() for t in fig.legends[0].get_texts()] == names
    assert scatter_panels(panels, xlabel="parameters", out=tmp_path / "p.png").is_file()
    assert scatter_panels({"x": []}, xlabel="parameters", out=tmp_path / "none.png") is None


def _png(path: Path, w: int, h: int, seed: int, channels: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels == 3 else (h, w)
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(path)
    return path


def test_compare_png_and_slider(tmp_path) -> None:
    a, b = _png(tmp_path / "a.png", 40, 24, 0), _png(tmp_path / "b.png", 40, 24, 1, channels=1)
    ref = _png(tmp_path / "ref.png", 40, 24, 2)
    result = compare_images(a, b, ref=ref, out=tmp_path / "side.png")
    assert [t for t, _ in result.panels] == ["a.png", "b.png", "reference: ref.png"]
    assert set(result.metrics) == {"a.png", "b.png"} and all(m["psnr"] > 0 for m in result.metrics.values())
    assert "PSNR" in result.summary() and "3 panels" in result.summary()

    page = compare_images(a, b, out=tmp_path / "slider.html").path.read_text()
    assert 'type="range"' in page and page.count("data:image/png;base64,") == 2 and "http" not in page.replace(
        'http-equiv', '')
    assert 'value="ref"' not in page and 'id="ref"' not in page
    page = compare_images(a, b, ref=ref, out=tmp_path / "slider-ref.html").path.read_text()
    assert page.count("data:image/png;base64,") == 3 and 'id="ref"' in page and 'value="ref"' in page
    assert "reference: ref.png" in page and "http" not in page.replace('http-equiv', '')
    with pytest.raises(RestoreKitError, match="different sizes"):
        compare_images(a, _png(tmp_path / "c.png", 10, 10, 3), out=tmp_path / "x.png")
    with pytest.raises(RestoreKitError, match=".png or .html"):
        compare_images(a, b, out=tmp_path / "x.jpg")


def test_compare_with_a_reference_shows_it_as_a_third_panel(tmp_path) -> None:
    w, h = 200, 120  # wider than the captions: each column is its image
    a, b, ref = (_png(tmp_path / f"{n}.png", w, h, seed) for n, seed in (("a", 0), ("b", 1), ("gt", 2)))
    result = compare_images(a, b, ref=ref, out=tmp_path / "three.png")
    side = np.asarray(Image.open(result.path).convert("RGB"))
    assert 3 * w < side.shape[1] <= 3 * w + 4 * 16 and h < side.shape[0] <= h + 80  # three panels and padding
    boxes = dict(result.panels)
    assert list(boxes) == ["a.png", "b.png", "reference: gt.png"]
    for name, path in (("a.png", a), ("b.png", b), ("reference: gt.png", ref)):
        x, y, bw, bh = boxes[name]
        assert (bw, bh) == (w, h)
        assert np.array_equal(side[y:y + h, x:x + w], np.asarray(Image.open(path).convert("RGB")))
    assert [x for x, *_ in boxes.values()] == sorted(x for x, *_ in boxes.values())  # left to right: A, B, reference

    two = compare_images(a, b, out=tmp_path / "two.png")
    width = Image.open(two.path).size[0]
    assert len(two.panels) == 2 and 2 * w < width <= 2 * w + 3 * 16 and not two.metrics
    x, y, *_ = dict(two.panels)["b.png"]
    assert np.array_equal(np.asarray(Image.open(two.path).convert("RGB"))[y:y + h, x:x + w],
                          np.asarray(Image.open(b).convert("RGB")))


def test_report_run(tmp_path) -> None:
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    with (run / "metrics.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "epoch", "loss", "lr", "val_psnr", "val_ssim", "time"])
        for step in range(10, 110, 10):
            val = step % 50 == 0
            w.writerow([step, step // 50, 0.1 / step, 1e-3, f"{25 + step / 50:.3f}" if val else "",
                        "0.8" if val else "", step * 0.5])
    (run / "config.yaml").write_text("model:\n  name: dncnn-s\n")
    for step in (50, 100):
        _png(run / "samples" / f"step_{step:06d}.png", 48, 32, step)
    page = report_run(run)
    assert page == run / "report.html" == report_folder(run)
    text = page.read_text()
    assert "best validation PSNR 27.000 dB at step 100" in text and "dncnn-s" in text
    with Image.open(run / "report-curves.png") as im:
        assert im.size[0] > 500
    assert (run / "report-samples.png").is_file()

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.csv").write_text("step,epoch,loss,lr,val_psnr,val_ssim,time\n")
    assert "no rows yet" in report_run(bare).read_text()
    with pytest.raises(RestoreKitError, match="metrics.csv"):
        report_run(tmp_path)
    with pytest.raises(RestoreKitError, match="neither"):
        report_folder(tmp_path)


def test_published_reference_of_cells(tmp_path) -> None:
    def entry(label: str, spec: str, source: str = "") -> ModelEntry:
        return ModelEntry(label, spec, spec, "0" * 64, "dncnn-s-folded", "denoise", 1, 555137, source)

    def cell(model: str, sigma: float) -> Cell:
        return Cell("k", model, "BSD68", sigma, "dncnn", {"psnr": 26.0, "ssim": 0.7, "input_psnr": 14.0, "input_ssim": 0.2},
                    [], None, "forward", "cpu", {}, {}, "")

    models = [entry("s25", "x/sigma=25.mat"), entry("conv", "c.safetensors", "sigma=25.mat"), entry("mine", "m.safetensors")]
    res = BenchmarkResults(tmp_path, models, [], [], [], [], [], {}, {})
    assert res.reference(cell("s25", 25)).psnr == 29.23
    assert res.reference(cell("conv", 25)).psnr == 29.23  # the source file a converted checkpoint records
    assert res.reference(cell("s25", 50)) is None  # not the σ=50 number of another DnCNN-S
    assert res.reference(cell("mine", 50)).psnr == 26.23  # unknown weights: the architecture's published result


def test_a_slice_of_a_set_is_its_own_set(bench_data, tmp_path) -> None:
    gray = bench_data["sets"][0]
    folder, samples = datasets.dataset_samples(f"{gray}[1:]")
    assert folder == Path(gray) and [s.name for s in samples] == ["g1", "g2"]
    assert [s.name for s in datasets.dataset_samples(f"{gray}[:-2]")[1]] == ["g0"]
    with pytest.raises(RestoreKitError, match="selects none"):
        datasets.dataset_samples(f"{gray}[5:]")
    res = run_benchmark(bench_data["models"][:1], [f"{gray}[1:]", gray], [25], tmp_path / "out", progress=False)
    by_set = {c.set: c for c in res.cells}
    assert set(by_set) == {"Set12[1:]", "Set12"}
    assert [i["name"] for i in by_set["Set12[1:]"].images] == ["g1", "g2"]
    assert by_set["Set12[1:]"].key != by_set["Set12"].key
    # the slice's numbers are those of the same images in the whole set
    whole = {i["name"]: i["psnr"] for i in by_set["Set12"].images}
    assert all(i["psnr"] == pytest.approx(whole[i["name"]]) for i in by_set["Set12[1:]"].images)


def test_benchmark_command_line_is_recorded_in_the_report(bench_data, tmp_path, capsys) -> None:
    from restorekit.cli import main

    out = tmp_path / "out"
    argv = ["benchmark", "--models", bench_data["models"][1], "--sets", bench_data["sets"][0], "--sigmas", "25",
            "--out", str(out)]
    assert main(argv) == 0
    command = "restorekit benchmark --models " + bench_data["models"][1]
    assert command in (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text())["settings"]["command"].startswith(command)
    assert "Produced by <code>restorekit benchmark" in (out / "report.html").read_text()


def test_mixed_protocols_are_flagged_and_not_ranked_together(tmp_path) -> None:
    from restorekit.report import per_image_table, protocol_notes, summary_table

    cc15 = [SetEntry("CC15", "CC15", True, 3, 1, "f")]

    def entry(label: str, protocol: str) -> ModelEntry:
        return ModelEntry(label, f"{label}.safetensors", f"{label}.safetensors", "0" * 64, "x", "denoise-real", 3, 1000,
                          "", protocol)

    def cell(model: str, protocol: str, psnr: float) -> Cell:
        mean = {"psnr": psnr, "ssim": 0.9, "input_psnr": 33.0, "input_ssim": 0.8}
        return Cell("k" + model, model, "CC15", None, protocol, mean, [{"name": "i0", **mean}], None, "forward", "cpu",
                    {}, {}, "")

    cells = [cell("a", "dncnn", 34.0), cell("b", "dncnn", 34.3), cell("c", "durn-rgb", 34.6)]
    mixed = BenchmarkResults(tmp_path, [entry("a", ""), entry("b", ""), entry("c", "durn-rgb")], cc15, cells, [], [], [],
                             {}, {})
    t = summary_table(mixed)
    assert t.headers[3] == "protocol" and [r[3] for r in t.rows] == ["dncnn", "dncnn", "durn-rgb"]
    psnr = t.headers.index("PSNR")
    assert [sorted(b) for b in t.bold] == [[], [psnr], []]  # c is alone in its protocol: nothing to rank it against
    assert protocol_notes(mixed) == [
        ("CC15: the models were measured with different metric protocols (dncnn for a, b; durn-rgb for c), each its "
         "paper's, so their numbers do not compare directly; pass --protocol NAME to measure all of them alike")]
    per_image = per_image_table(mixed, "CC15", None)
    assert per_image.headers[3] == "c PSNR / SSIM (durn-rgb)" and not any(per_image.bold)

    alike = BenchmarkResults(tmp_path, mixed.models, cc15, [cell(m, "durn-rgb", p) for m, p in (("a", 34.0), ("c", 34.6))],
                             [], [], [], {}, {})
    t = summary_table(alike)
    assert "protocol" not in t.headers and t.bold[1] == {t.headers.index("PSNR")}
    assert protocol_notes(alike) == []


def test_cell_key_ignores_options_left_at_their_defaults() -> None:
    from restorekit.eval.benchmark import cell_key
    from restorekit.eval.results import ModelEntry, SetEntry

    model = ModelEntry(label="m", spec="m.safetensors", path="m.safetensors", sha256="ab" * 32, arch="dncnn-s",
                       task="denoise", channels=1, params=1)
    data = SetEntry(name="s", path="s", paired=False, channels=1, images=2, fingerprint="cd" * 32)
    base = {"seed": 0, "repeats": 1, "clip_noise": False, "crop_border": 0}

    def key(**inference: object) -> str:
        return cell_key(model, data, 25.0, "dncnn", {**base, "inference": inference})

    # a cell measured before an option existed keeps its key while the option stays at its default
    assert key(precision="fp32") == key(precision="fp32", color="y", tiling=None) == key()
    assert key(device="cuda", tile_batch=8) == key()  # where it ran does not change the numbers
    assert key(precision="bf16") != key() and key(ensemble=True) != key() and key(color="rgb") != key()
    assert cell_key(model, data, 50.0, "dncnn", {**base, "inference": {}}) != key()
