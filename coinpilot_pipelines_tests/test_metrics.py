"""`coinpilot metrics`: values from a known database state, a scrape after the demo, and the alert rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from coinpilot_pipelines.clock import SimulatedClock
from coinpilot_pipelines.metrics.catalogue import METRIC_NAMES
from coinpilot_pipelines.metrics.collector import CoinpilotCollector, ExporterConfig
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.models import log_inference
from coinpilot_pipelines.storage.runtime_state import TRADE_MODE_KEY, champion_key, record_runtime_value
from coinpilot_pipelines.storage.schema import gap_segments
from coinpilot_pipelines.storage.throwaway_postgres import free_port
from coinpilot_pipelines.storage.trading import update_risk_state
from coinpilot_pipelines.trading.risk import RiskState

from .rehearsal import wait_for
from .trading_helpers import BTC, MARKET_START, stored_market

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "docker" / "prometheus" / "alerts.yml"
# Prometheus's own series for every scrape target, not the exporter's.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset"}

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(text: str) -> Samples:
    """Exposition text as {metric: {sorted labels: value}}; every family, also those without samples."""
    return {family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
            for family in text_string_to_metric_families(text)}


def collect(engine, config: ExporterConfig, clock: SimulatedClock) -> Samples:  # noqa: ANN001
    registry = CollectorRegistry()
    registry.register(CoinpilotCollector(engine, config, clock))
    return scrape(generate_latest(registry).decode())


def one(samples: Samples, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def test_the_values_of_a_known_state(db_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"outages": [{"symbol": "BTCUSDT", "start": "2024-02-05T00:30:00Z",
                                        "end": "2024-02-05T00:40:00Z"}]})
    stored_market(db_url, emulator.url, minutes=120)  # bars 00:00 .. 01:59, ten missing
    engine = get_engine(db_url)
    now = MARKET_START + timedelta(hours=2, minutes=5, seconds=30)
    segment = {"exchange": "binance", "symbol": "BTCUSDT", "interval": "1m", "source": "scan"}
    with engine.begin() as connection:
        connection.execute(insert(gap_segments), [
            {**segment, "from_open_time": MARKET_START + timedelta(minutes=30), "to_open_time": MARKET_START +
             timedelta(minutes=40), "missing_bars": 10, "remaining_bars": 10, "state": "open", "detected_at": now,
             "recovered_at": None},  # every row names the same columns (one executemany)
            *({**segment, "from_open_time": MARKET_START + timedelta(minutes=m), "to_open_time": MARKET_START +
               timedelta(minutes=m + 1), "missing_bars": 1, "remaining_bars": 0, "state": "recovered",
               "detected_at": now - timedelta(hours=1), "recovered_at": now - timedelta(hours=1) + ttr}
              for m, ttr in ((50, timedelta(seconds=60)), (51, timedelta(seconds=600)))),
            {**segment, "from_open_time": MARKET_START + timedelta(minutes=52), "to_open_time": MARKET_START +
             timedelta(minutes=53), "missing_bars": 1, "remaining_bars": 0, "state": "recovered",
             "detected_at": now - timedelta(days=3), "recovered_at": now - timedelta(days=2)},  # outside the day
        ])
        update_risk_state(connection, "default", now, lambda s: RiskState(s.trading_day, Decimal("-60"), 3, None))
    log_inference(engine, [{"exchange": "binance", "symbol": "BTCUSDT", "interval": "1m", "model_name": "m",
                            "model_version": "3", "feature_set_version": "v1", "probability": 0.6, "threshold": 0.5,
                            "decision": "long", "horizon_bars": 15, "scored_at": now,
                            "open_time": MARKET_START + timedelta(minutes=100)}])
    record_runtime_value(engine, TRADE_MODE_KEY, "live", now=now)
    record_runtime_value(engine, champion_key("m"), "3", now=now)

    config = ExporterConfig(series=[BTC], start_date=MARKET_START.date(), daily_loss_limit=Decimal("50"))
    samples = collect(engine, config, SimulatedClock(now))
    assert set(samples) == METRIC_NAMES
    # 125 closed bars since the first partition (00:00 .. 02:04), 110 stored
    assert one(samples, "coinpilot_candles_completeness_ratio", symbol="BTCUSDT", window="1d") == 110 / 125
    assert one(samples, "coinpilot_candles_completeness_ratio", symbol="BTCUSDT", window="365d") == 110 / 125
    assert one(samples, "coinpilot_candles_bars_behind", symbol="BTCUSDT") == 5  # 02:00 .. 02:04 closed, not stored
    assert one(samples, "coinpilot_candles_last_open_time_seconds", symbol="BTCUSDT") == \
        (MARKET_START + timedelta(minutes=119)).timestamp()
    assert one(samples, "coinpilot_gap_segments_open", symbol="BTCUSDT") == 1
    assert one(samples, "coinpilot_gap_missing_bars", symbol="BTCUSDT") == 10
    assert one(samples, "coinpilot_gap_recovered_segments", symbol="BTCUSDT") == 2
    assert one(samples, "coinpilot_gap_mttr_seconds", symbol="BTCUSDT", quantile="0.5") == 330
    assert one(samples, "coinpilot_gap_mttr_seconds", symbol="BTCUSDT", quantile="0.9") == pytest.approx(546)
    assert one(samples, "coinpilot_inference_lag_seconds", symbol="BTCUSDT") == 19 * 60
    assert samples["coinpilot_trade_mode"] == {(("mode", "shadow"),): 0, (("mode", "test"),): 0, (("mode", "live"),): 1}
    assert one(samples, "coinpilot_model_champion_version", model="m") == 3
    assert one(samples, "coinpilot_realized_pnl_today", profile="default") == -60
    assert one(samples, "coinpilot_daily_loss_limit_reached", profile="default") == 1
    assert one(samples, "coinpilot_paper_positions_open", symbol="BTCUSDT") == 0
    # Not held in the database yet: left out, not reported as zero.
    assert samples["coinpilot_calibration_ece"] == {} and samples["coinpilot_news_source_health_score"] == {}

    tomorrow = collect(engine, config, SimulatedClock(now + timedelta(days=1)))
    assert one(tomorrow, "coinpilot_realized_pnl_today", profile="default") == 0
    assert one(tomorrow, "coinpilot_daily_loss_limit_reached", profile="default") == 0
    assert one(tomorrow, "coinpilot_gap_recovered_segments", symbol="BTCUSDT") == 0
    assert "coinpilot_gap_mttr_seconds" in tomorrow and tomorrow["coinpilot_gap_mttr_seconds"] == {}


@pytest.fixture
def exporter(demo_home: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "DAGSTER_"))}
    process = subprocess.Popen([sys.executable, "-m", "coinpilot_pipelines.cli", "metrics", "--port", str(port)],
                               env={**env, "COINPILOT_HOME": str(demo_home)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for("coinpilot metrics", lambda: httpx.get(url, timeout=5).status_code == 200, 60)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.demo
def test_a_scrape_after_the_demo(exporter: str) -> None:
    """The demo on a fresh home as a subprocess, then `coinpilot metrics` on that home, scraped over
    HTTP. Budget: 3 minutes; about 70 s on a 2-core machine, nearly all of it the demo."""
    response = httpx.get(exporter, timeout=10)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = scrape(response.text)
    assert set(samples) == METRIC_NAMES
    for symbol in ("BTCUSDT", "XRPUSDT"):  # 21 days, up to 2023-03-21 23:59
        assert one(samples, "coinpilot_candles_last_open_time_seconds", symbol=symbol) == 1679443140
        assert one(samples, "coinpilot_candles_bars_behind", symbol=symbol) > 0  # the demo's days are long past
        for window in ("1d", "365d"):
            assert 0 <= one(samples, "coinpilot_candles_completeness_ratio", symbol=symbol, window=window) <= 1
        assert one(samples, "coinpilot_gap_segments_open", symbol=symbol) == 0  # the recordings are whole
        assert one(samples, "coinpilot_inference_lag_seconds", symbol=symbol) == 0  # every stored bar scored
        assert one(samples, "coinpilot_paper_positions_open", symbol=symbol) >= 0
    assert one(samples, "coinpilot_model_champion_version", model="coinpilot-signal") == 1
    ece = samples["coinpilot_calibration_ece"]
    assert {dict(labels)["window"] for labels in ece} == {"production", "live"}
    assert all(0 <= value <= 1 for value in ece.values())
    [gap] = samples["coinpilot_calibration_ece_gap"].values()
    assert gap == pytest.approx(one(samples, "coinpilot_calibration_ece", model="coinpilot-signal", version="1",
                                    window="live") - one(samples, "coinpilot_calibration_ece",
                                                         model="coinpilot-signal", version="1", window="production"))
    sources = {dict(labels)["source"] for labels in samples["coinpilot_news_source_health_score"]}
    assert {"coindesk", "cointelegraph", "decrypt", "theblock", "prnewswire"} <= sources
    assert all(0 <= v <= 1 for v in samples["coinpilot_news_source_health_score"].values())
    assert set(samples["coinpilot_news_source_stalled"].values()) <= {0, 1}
    assert one(samples, "coinpilot_trade_mode", mode="shadow") == 1 and one(samples, "coinpilot_trade_mode", mode="live") == 0
    assert one(samples, "coinpilot_order_attempts", mode="shadow", status="logged") > 0
    assert one(samples, "coinpilot_daily_loss_limit") == 50
    assert one(samples, "coinpilot_daily_loss_limit_reached", profile="default") in (0, 1)
    assert 0 < one(samples, "coinpilot_exporter_scrape_seconds") < 10


def rule_metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers outside strings, label matchers,
    ranges and grouping clauses that are not functions or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:]*\s*\()", text))  # not followed by "("
    return names - PROMQL_WORDS


def test_the_alert_rules_pass_promtool_and_name_only_metrics_the_exporter_serves(sqlite_url: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (Debian package prometheus); CI installs it")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # What the exporter serves: every family of a scrape, even of an empty database.
    config = ExporterConfig(series=[BTC], start_date=MARKET_START.date(), daily_loss_limit=Decimal("50"))
    served = set(collect(get_engine(sqlite_url), config, SimulatedClock(MARKET_START)))
    assert served == METRIC_NAMES
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert len(rules) >= 10
    for rule in rules:
        names = rule_metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        assert names <= served | PROMETHEUS_SERIES, f"{rule['alert']} names {names - served} the exporter does not serve"
    named = {name for rule in rules for name in rule_metric_names(rule["expr"])}
    # the list: kline gaps, gap queue, MTTR, news stall and anomalies, inference lag, calibration gap,
    # live trading, daily loss limit
    assert {"coinpilot_gap_missing_bars", "coinpilot_gap_segments_open", "coinpilot_gap_mttr_seconds",
            "coinpilot_news_source_stalled", "coinpilot_news_source_anomaly", "coinpilot_inference_lag_seconds",
            "coinpilot_calibration_ece_gap", "coinpilot_trade_mode", "coinpilot_daily_loss_limit_reached"} <= named
    assert rule_metric_names('sum by (mode) (delta(coinpilot_order_attempts{status="error"}[1h])) > 0') == {
        "coinpilot_order_attempts"}
