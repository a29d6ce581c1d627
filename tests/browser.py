"""The pages a user opens, in a real browser with the network off: every image and chart drawn, no console error.

tests/test_pipeline.py opens its run's `reports/index.html` and DVC's plots pages (`dvc plots show`,
`dvc plots diff`) from disk with these helpers, in headless Chromium (Debian's `chromium`, driven by
Playwright). Any request that would leave the machine is blocked and recorded, so a page that needs a
CDN fails here as it would on an air-gapped machine. A full-page screenshot of each page goes to
$REPROVISION_SCREENSHOTS (default: artifacts/screenshots/ in the project root); CI uploads them.
Without chromium those tests skip, unless REPROVISION_REQUIRE_BROWSER=1 (CI sets it), which makes a
missing browser a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.project import BIN, ROOT, run

SCREENSHOTS = Path(os.environ.get("REPROVISION_SCREENSHOTS") or ROOT / "artifacts" / "screenshots")
# Chromium as root needs --no-sandbox; the other flags stop its background traffic (updates, sync,
# first-run pages), which on a closed network is only noise and not something a page asked for.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]
LOCAL = ("file:", "data:", "blob:", "about:")
# A chart is drawn once Vega has put its <canvas class="marks"> (or svg) in the vega-embed container
# with a real size; vega-embed's own action-menu icon is an svg too, hence `.marks`.
STATE = """() => {
    const sized = e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().height > 0;
    const charts = [...document.querySelectorAll('.vega-embed')];
    const images = [...document.images];
    return {
        charts: charts.length,
        drawn: charts.filter(c => [...c.querySelectorAll('.marks')].some(sized)).length,
        images: images.length,
        broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 80)),
    };
}"""


@dataclass
class Rendered:
    charts: int
    drawn: int
    images: int
    broken: list[str]
    offsite: list[str] = field(default_factory=list)  # requests that would have left the machine
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under Playwright; skips the calling test without it, unless
    REPROVISION_REQUIRE_BROWSER=1 (CI sets it): then fails."""
    executable = shutil.which("chromium")
    if executable is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("REPROVISION_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{message}; REPROVISION_REQUIRE_BROWSER=1 requires it")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Debian's browser, never a downloaded one (`playwright install` needs the network).
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def render(browser, html: Path, screenshot: str | None, charts: int | None = None) -> Rendered:
    """Open `html` offline, wait until `charts` (default: every) Vega chart on it is drawn, save a screenshot,
    and report what rendered."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    offsite, errors = [], []

    def block(route):
        offsite.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith(LOCAL), block)
    context.route_web_socket(lambda url: True, lambda ws: offsite.append(ws.url))
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.as_uri(), wait_until="load")
    # Vega draws after load, asynchronously; on a timeout the assertions below say what is missing.
    with contextlib.suppress(PlaywrightTimeout):
        wanted = "s.charts" if charts is None else charts
        page.wait_for_function(f"() => {{ const s = ({STATE})(); return s.drawn >= {wanted}; }}", timeout=15_000)
    if screenshot:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / screenshot, full_page=True)
    state = page.evaluate(STATE)
    context.close()
    return Rendered(**state, offsite=offsite, errors=errors)


def assert_rendered(result: Rendered, charts: int | None = None) -> None:
    """Nothing asked of the network, no console error, every image and chart drawn (and `charts` of them)."""
    assert result.offsite == [], f"the page asked the network for {result.offsite}"
    assert result.errors == [], f"console errors: {result.errors}"
    assert result.images > 0 and result.broken == [], f"{result.images} images, not drawn: {result.broken}"
    assert result.drawn == result.charts, f"{result.charts - result.drawn} of {result.charts} charts not drawn"
    assert charts is None or result.charts == charts, f"{result.charts} charts on the page, DVC defines {charts}"


def vega_charts(work: Path, *plots_args: str) -> int:
    """How many Vega charts DVC defines for this `dvc plots ...` command (images aside)."""
    data = json.loads(run(work, str(BIN / "dvc"), "plots", *plots_args, "--json").stdout)["data"]
    return sum(r["type"] == "vega" for renderers in data.values() for r in renderers)
