"""Open the benchmark report and the comparison slider in a real headless Chromium (via Playwright):
tables and images render, nothing is fetched, no console error. Screenshots go to tests/artifacts/.

Needs ``pip install playwright`` and a Chromium binary (Debian: ``apt-get install chromium``; or set
RESTOREKIT_CHROMIUM). Playwright's own browser download (``playwright install``) is not used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from test_report import _png, bench_data  # noqa: F401  (bench_data is a fixture)

from restorekit.eval.benchmark import run_benchmark
from restorekit.report import compare_images, write_report

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str | None:
    candidates = [os.environ.get("RESTOREKIT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set RESTOREKIT_CHROMIUM)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=LAUNCH_ARGS, timeout=60_000)
        yield b
        b.close()


def _open(browser: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    """A page showing ``path``; console errors and any request leaving file:/data: are collected."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", guard)
    page.goto(path.resolve().as_uri(), wait_until="load", timeout=30_000)
    return page, errors, outside


def _broken_images(page: Any) -> list[str]:
    return page.evaluate("""() => Array.from(document.images)
        .filter(i => !i.complete || i.naturalWidth === 0 || i.getBoundingClientRect().width === 0)
        .map(i => i.alt || i.src.slice(0, 40))""")


def test_report_renders_in_chromium(browser, bench_data, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "bench"
    write_report(run_benchmark(bench_data["models"], bench_data["sets"], [25], out, progress=False))
    page, errors, outside = _open(browser, out / "report.html")
    try:
        assert page.evaluate("document.images.length") >= 4
        assert _broken_images(page) == []
        tables = page.evaluate("""() => Array.from(document.querySelectorAll('table')).map(t => ({
            rows: t.tBodies[0].rows.length, visible: t.getBoundingClientRect().height > 0}))""")
        visible = [t for t in tables if t["visible"]]
        assert len(visible) >= 3 and all(t["rows"] > 0 for t in tables)
        # The per-image tables are collapsed; opening one (no JS needed) shows it.
        page.click("details summary")
        assert page.evaluate("document.querySelector('details table').getBoundingClientRect().height") > 0
        assert page.evaluate("getComputedStyle(document.body).fontFamily")  # the inline CSS applied
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        assert errors == [] and outside == []
    finally:
        page.close()


def test_compare_slider_in_chromium(browser, tmp_path) -> None:
    a, b = _png(tmp_path / "a.png", 64, 48, 0), _png(tmp_path / "b.png", 64, 48, 1)
    html = compare_images(a, b, ref=_png(tmp_path / "r.png", 64, 48, 2), out=tmp_path / "cmp.html").path
    page, errors, outside = _open(browser, html)
    try:
        assert page.evaluate("document.images.length") == 2 and _broken_images(page) == []
        page.fill("#pos", "20")  # drives the inline script: the top image is clipped at 20 %
        assert "80%" in page.evaluate("document.getElementById('top').style.clipPath")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "compare.png"))
        assert errors == [] and outside == []
    finally:
        page.close()
