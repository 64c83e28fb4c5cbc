"""The pictures where people look: the `candles` asset page in a real dagster-webserver, in
headless Chromium (Debian's package; `.ci/run` installs it), shows the day's chart."""

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


def test_the_candles_page_shows_the_days_chart(sqlite_url: str, emulator, tmp_path: Path) -> None:  # noqa: ANN001
    browser_path = chromium()
    started = time.monotonic()
    home = tmp_path / "dagster-home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:  # SQLite run and event storage
        assert materialize(sqlite_url, emulator.url, partition_key=PARTITION, instance=instance).success
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "COINPILOT_HOME": str(tmp_path / "coinpilot-home"),
           "COINPILOT_DATABASE_URL": sqlite_url, "COINPILOT_SYMBOLS": "BTCUSDT,XRPUSDT",
           "COINPILOT_START_DATE": "2023-01-01", "COINPILOT_BINANCE_BASE_URL": emulator.url}
    webserver = Service("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                                      "-m", "coinpilot_pipelines.definitions"],
                        env, tmp_path / "webserver.log").start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("dagster-webserver", lambda: httpx.get(f"{base}/server_info", timeout=2).is_success, timeout_s=45)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, headless=True)
            page = browser.new_page()
            page.goto(asset_url(base, "candles", PARTITION))
            # A fresh instance greets with the community dialog first.
            page.get_by_role("button", name="Skip").click(timeout=45_000)
            # Markdown this long sits behind a button on its row ("chart") that opens it rendered.
            row = page.locator("tr", has=page.get_by_text("chart", exact=True))
            row.get_by_text("[Show Markdown]").first.click(timeout=30_000)
            image = page.locator('img[src^="data:image/png;base64,"]').first
            image.wait_for(state="attached", timeout=15_000)
            image.scroll_into_view_if_needed()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
            shown = image.evaluate("img => [img.naturalWidth, img.naturalHeight, img.alt]")
            browser.close()
    finally:
        webserver.stop()
    assert shown is not None, "no inline PNG on the candles page\n" + webserver.log()[-2000:]
    width, height, alt = shown
    assert width > 0 and height > 0 and alt == "BTCUSDT candles 2023-03-10"
    print(f"browser test: {time.monotonic() - started:.1f} s", file=sys.stderr)
