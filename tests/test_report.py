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


def _png(path: Path, w: int, h: int, seed: int, channels: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels == 3 else (h, w)
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(path)
    return path


def test_compare_png_and_slider(tmp_path) -> None:
    a, b = _png(tmp_path / "a.png", 40, 24, 0), _png(tmp_path / "b.png", 40, 24, 1, channels=1)
    ref = _png(tmp_path / "ref.png", 40, 24, 2)
    result = compare_images(a, b, ref=ref, out=tmp_path / "side.png")
    with Image.open(result.path) as im:
        assert im.size == (80, 24)
    assert set(result.metrics) == {"a.png", "b.png"} and all(m["psnr"] > 0 for m in result.metrics.values())
    assert "PSNR" in result.summary()

    page = compare_images(a, b, out=tmp_path / "slider.html").path.read_text()
    assert 'type="range"' in page and page.count("data:image/png;base64,") == 2 and "http" not in page.replace(
        'http-equiv', '')
    with pytest.raises(RestoreKitError, match="different sizes"):
        compare_images(a, _png(tmp_path / "c.png", 10, 10, 3), out=tmp_path / "x.png")
    with pytest.raises(RestoreKitError, match=".png or .html"):
        compare_images(a, b, out=tmp_path / "x.jpg")


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
