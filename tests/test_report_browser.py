"""Open the benchmark report and the comparison slider in a real headless Chromium (via Playwright):
tables and images render, the summary comes first, nothing is wider than a 1400 px window, nothing is
fetched, no console error. Screenshots are kept in each test's tmp folder (and copied to tests/artifacts/).

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
from restorekit.report import Table, compare_images, write_report
from restorekit.report.html import page as html_page
from restorekit.report.html import table as html_table

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WINDOW = 1400  # the report must fit a window this wide
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


def _open(browser: Any, path: Path, width: int = 1280) -> tuple[Any, list[str], list[str]]:
    """A page showing ``path``; console errors and any request leaving file:/data: are collected."""
    page = browser.new_page(viewport={"width": width, "height": 900})
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


def _screenshot(page: Any, folder: Path, name: str, **kw: Any) -> Path:
    """Kept in the test's tmp folder (pytest keeps the last runs'), and copied to tests/artifacts/."""
    path = folder / name
    page.screenshot(path=str(path), **kw)
    assert path.stat().st_size > 1000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    return path


def _overflow(page: Any) -> dict[str, Any]:
    """How wide the document is, and the elements whose right edge passes the window's."""
    return page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        wide: Array.from(document.querySelectorAll('main *'))
            .filter(e => e.checkVisibility() && e.getBoundingClientRect().right > window.innerWidth + 0.5
                         && !e.closest('.scroll'))
            .map(e => e.tagName + (e.className ? '.' + e.className : '')).slice(0, 5)})""")


def _fits(page: Any) -> bool:
    """document.documentElement.scrollWidth within the window (less a scrollbar), and no element past it."""
    found = _overflow(page)
    assert found["scroll"] <= WINDOW and found["wide"] == [], found
    return True


def _broken_images(page: Any) -> list[str]:
    return page.evaluate("""() => Array.from(document.images)
        .filter(i => !i.complete || i.naturalWidth === 0 || i.getBoundingClientRect().width === 0)
        .map(i => i.alt || i.src.slice(0, 40))""")


def test_report_renders_in_chromium(browser, bench_data, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "bench"
    write_report(run_benchmark(bench_data["models"], bench_data["sets"], [25, 50], out, progress=False))
    page, errors, outside = _open(browser, out / "report.html", width=WINDOW)
    try:
        assert page.evaluate("document.images.length") >= 4
        assert _broken_images(page) == []
        tables = page.evaluate("""() => Array.from(document.querySelectorAll('table')).map(t => ({
            rows: t.tBodies[0].rows.length, visible: t.checkVisibility() && t.getBoundingClientRect().height > 0,
            collapsed: !!t.closest('details'), boxed: t.parentElement.classList.contains('scroll')}))""")
        # The first screen is the summary; every other table is collapsed, each in its own scrolling box.
        assert tables[0]["visible"] and not tables[0]["collapsed"] and tables[0]["rows"] == 3
        assert [t["visible"] for t in tables] == [True] + [False] * (len(tables) - 1)
        assert all(t["collapsed"] for t in tables[1:]) and all(t["boxed"] and t["rows"] > 0 for t in tables)
        summary_top = page.evaluate("document.querySelector('table').getBoundingClientRect().top")
        assert summary_top < 900 / 2
        assert _fits(page)
        _screenshot(page, tmp_path, "report.png", full_page=True)

        # Opening one (no JS needed) shows it; with all open, the page is still no wider than the window.
        page.click("details summary")
        assert page.evaluate("document.querySelector('details table').checkVisibility()")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert _fits(page)
        assert page.evaluate("getComputedStyle(document.body).fontFamily")  # the inline CSS applied
        _screenshot(page, tmp_path, "report-open.png", full_page=True)
        assert errors == [] and outside == []
    finally:
        page.close()


def test_wide_tables_scroll_inside_their_box(browser, tmp_path) -> None:
    t = Table(["model"] + [f"a rather long column header number {i}" for i in range(40)], numeric=set(range(1, 41)))
    t.add(["a-model-label-that-is-long"] + [f"{30 + i / 7:.3f} / 0.{i:04d}" for i in range(40)])
    html = tmp_path / "wide.html"
    html.write_text(html_page("wide", "<h1>wide</h1><p><code>" + "x" * 400 + "</code></p>" + html_table(t)))
    page, errors, _ = _open(browser, html, width=WINDOW)
    try:
        assert _fits(page)
        box = page.evaluate("""() => { const d = document.querySelector('.scroll');
            return {client: d.clientWidth, scroll: d.scrollWidth}; }""")
        assert box["client"] <= WINDOW and box["scroll"] > box["client"]  # the table scrolls in its box
        heights = page.evaluate("Array.from(document.querySelectorAll('th')).map(th => th.getBoundingClientRect().height)")
        td = page.evaluate("document.querySelector('td').getBoundingClientRect().height")
        assert max(heights) > 1.5 * td  # long headers wrap
        assert errors == []
    finally:
        page.close()


def test_compare_slider_in_chromium(browser, tmp_path) -> None:
    a, b = _png(tmp_path / "a.png", 64, 48, 0), _png(tmp_path / "b.png", 64, 48, 1)
    html = compare_images(a, b, ref=_png(tmp_path / "r.png", 64, 48, 2), out=tmp_path / "cmp.html").path
    page, errors, outside = _open(browser, html)
    try:
        # A, B and the reference, shown below the slider
        assert page.evaluate("document.images.length") == 3 and _broken_images(page) == []
        page.fill("#pos", "20")  # drives the inline script: the top image is clipped at 20 %
        assert "80%" in page.evaluate("document.getElementById('top').style.clipPath")
        b_src = page.evaluate("document.getElementById('bottom').src")
        page.check('input[value="ref"]')  # the right side switches to the reference
        assert page.evaluate("document.getElementById('bottom').src") == page.evaluate("document.getElementById('ref').src")
        assert "reference" in page.inner_text("#right-label")
        page.check('input[value="b"]')
        assert page.evaluate("document.getElementById('bottom').src") == b_src
        _screenshot(page, tmp_path, "compare.png")
        assert errors == [] and outside == []
    finally:
        page.close()
