"""The pictures where people look, in a real dagster-webserver and headless Chromium (Debian's
package; `.ci/run` installs it): the `candles` asset page shows the day's chart, `calibration_report`
its reliability diagram (about 40 s each, plus the demo the second shares with other tests)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest
from playwright.sync_api import sync_playwright

from coinpilot_pipelines.defs.links import asset_url
from coinpilot_pipelines.storage.throwaway_postgres import free_port

from .rehearsal import BIN, Service, wait_for
from .test_candles_asset import materialize

CHROMIUM = "/usr/bin/chromium"
PARTITION = "2023-03-10|BTCUSDT"

pytestmark = pytest.mark.browser


def chromium() -> str:
    found = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if found is None:
        pytest.fail("Chromium is missing: `apt-get install -y chromium` (Debian's package; .ci/run installs it)")
    return found


def shown_image(env: dict[str, str], log_dir: Path, asset: str, row: str, partition: str | None = None) -> list:
    """Open ``asset``'s page (on ``partition``) as a user does, open the markdown of its metadata row
    ``row`` and wait for its inline PNG to load: the image's width, height and alt text."""
    browser_path = chromium()
    port = free_port()
    webserver = Service("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                                      "-m", "coinpilot_pipelines.definitions"],
                        env, log_dir / "webserver.log").start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("dagster-webserver", lambda: httpx.get(f"{base}/server_info", timeout=2).is_success, timeout_s=60)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, headless=True)
            page = browser.new_page()
            page.goto(asset_url(base, asset, partition))
            # A fresh instance greets with the community dialog first.
            page.get_by_role("button", name="Skip").click(timeout=45_000)
            # Markdown this long sits behind a button on its row that opens it rendered.
            page.locator("tr", has=page.get_by_text(row, exact=True)).get_by_text("[Show Markdown]").first.click(
                timeout=30_000)
            image = page.locator('img[src^="data:image/png;base64,"]').first
            image.wait_for(state="attached", timeout=15_000)
            image.scroll_into_view_if_needed()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
            shown = image.evaluate("img => [img.naturalWidth, img.naturalHeight, img.alt]")
            browser.close()
    finally:
        webserver.stop()
    assert shown is not None, f"no inline PNG on the {asset} page\n" + webserver.log()[-2000:]
    return shown


def test_the_candles_page_shows_the_days_chart(sqlite_url: str, emulator, tmp_path: Path) -> None:  # noqa: ANN001
    started = time.monotonic()
    home = tmp_path / "dagster-home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:  # SQLite run and event storage
        assert materialize(sqlite_url, emulator.url, partition_key=PARTITION, instance=instance).success
    env = {**os.environ, "DAGSTER_HOME": str(home), "COINPILOT_HOME": str(tmp_path / "coinpilot-home"),
           "COINPILOT_DATABASE_URL": sqlite_url, "COINPILOT_SYMBOLS": "BTCUSDT,XRPUSDT",
           "COINPILOT_START_DATE": "2023-01-01", "COINPILOT_BINANCE_BASE_URL": emulator.url}
    width, height, alt = shown_image(env, tmp_path, "candles", "chart", PARTITION)
    assert width > 0 and height > 0 and alt == "BTCUSDT candles 2023-03-10"
    print(f"browser test: {time.monotonic() - started:.1f} s", file=sys.stderr)


def test_the_calibration_report_page_shows_the_reliability_diagram(demo_home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "DAGSTER_"))}
    env |= {"COINPILOT_HOME": str(demo_home), "DAGSTER_HOME": str(demo_home / "dagster")}
    width, height, alt = shown_image(env, tmp_path, "calibration_report", "reliability_diagram")
    assert width > 300 and height > 200 and alt == "reliability diagram: production vs live"
