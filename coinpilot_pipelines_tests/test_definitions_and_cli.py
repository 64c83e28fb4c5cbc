"""The project loads as Dagster sees it, and the command line behaves for a new user."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from coinpilot_pipelines.settings import ConfigError, Settings

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "DAGSTER_"))}
    return {**env, "COINPILOT_HOME": str(home), **extra}


def test_definitions_load_with_the_contract_names() -> None:
    from coinpilot_pipelines.definitions import defs

    assert isinstance(defs, dg.Definitions)
    candles = defs.resolve_assets_def("candles")
    partitions = candles.partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    assert {d.name for d in partitions.partitions_defs} == {"date", "symbol"}
    assert "2024-03-05|XRPUSDT" in partitions.get_partition_keys()
    assert candles.backfill_policy == dg.BackfillPolicy.single_run()


def test_definitions_carry_every_contract_name() -> None:
    from coinpilot_pipelines.definitions import defs

    for asset in ("candles", "gap_segments", "features", "signal_model", "calibration_report"):
        assert defs.resolve_assets_def(asset)
    for job in ("gap_repair_job", "continuity_scan_job", "retrain_job", "order_executor_job"):
        assert defs.resolve_job_def(job)
    for sensor in ("live_kline_sensor", "retrain_sensor", "order_signal_sensor"):
        assert defs.resolve_sensor_def(sensor)
    for schedule in ("continuity_scan_schedule", "retrain_schedule"):
        assert defs.resolve_schedule_def(schedule)
    assert defs.resolve_assets_def("features").partitions_def == defs.resolve_assets_def("candles").partitions_def


def test_dagster_definitions_validate_passes(tmp_path: Path) -> None:
    result = run("dagster", "definitions", "validate", "-m", "coinpilot_pipelines.definitions",
                 env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_workspace_yaml_loads_the_module() -> None:
    assert "coinpilot_pipelines.definitions" in (REPO / "workspace.yaml").read_text()


@pytest.mark.parametrize("env,message", [
    ({"COINPILOT_SYMBOLS": "BTC/USDT"}, "COINPILOT_SYMBOLS: 'BTC/USDT' is not a valid symbol"),
    ({"COINPILOT_INTERVAL": "7m"}, "COINPILOT_INTERVAL: '7m' is not a supported interval"),
    ({"COINPILOT_START_DATE": "yesterday"}, "COINPILOT_START_DATE: 'yesterday' is not a date"),
    ({"COINPILOT_MARKET_EXCHANGE": "kraken"}, "COINPILOT_MARKET_EXCHANGE: 'kraken' is not one of"),
    ({"COINPILOT_DATABASE_URL": "mysql://x"}, "COINPILOT_DATABASE_URL: expected sqlite"),
    ({"COINPILOT_BINANCE_BASE_URL": "ftp://x"}, "COINPILOT_BINANCE_BASE_URL: 'ftp://x' is not an http(s) URL"),
    ({"NEWS_POLL_INTERVAL": "0"}, "NEWS_POLL_INTERVAL: '0' must be >= 1"),
    ({"NEWS_SOURCE_STALL_THRESHOLD_SEC": "15m"}, "NEWS_SOURCE_STALL_THRESHOLD_SEC: '15m' is not an integer"),
    ({"NEWS_DEDUP_MIN_RATIO": "1.5"}, "NEWS_DEDUP_MIN_RATIO: '1.5' must be >= 0 and <= 1"),
    ({"NEWS_DEDUP_RATIO_STREAK": "0"}, "NEWS_DEDUP_RATIO_STREAK: '0' must be >= 1"),
    ({"NEWS_DEDUP_VOLATILITY_WINDOW": "1"}, "NEWS_DEDUP_VOLATILITY_WINDOW: '1' must be >= 2"),
    ({"NEWS_DEDUP_VOLATILITY_THRESHOLD": "0.7"}, "NEWS_DEDUP_VOLATILITY_THRESHOLD: '0.7' must be > 0 and <= 0.5"),
    ({"NEWS_RSS_FEEDS": "ftp://feeds.example.com/rss"}, "NEWS_RSS_FEEDS: 'ftp://feeds.example.com/rss' is not an http(s) URL"),
    ({"NEWS_RSS_FEEDS": "https://a.com/x,https://www.a.com/y"}, "NEWS_RSS_FEEDS: several feeds are named a.com"),
    ({"NEWS_RSS_FEEDS": "Big Feed=https://a.com/x"}, "NEWS_RSS_FEEDS: source name 'Big Feed' must be"),
    ({"COINPILOT_NEWS_BASE_URL": "localhost:8765"}, "COINPILOT_NEWS_BASE_URL: 'localhost:8765' is not an http(s) URL"),
])
def test_bad_configuration_is_named_precisely(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert str(error.value).startswith(message)


def test_defaults_are_the_embedded_ones(tmp_path: Path) -> None:
    settings = Settings.from_env({"COINPILOT_HOME": str(tmp_path)})
    assert settings.symbols == ("BTCUSDT", "XRPUSDT") and settings.interval.code == "1m"
    assert settings.database_url == f"sqlite:///{tmp_path / 'coinpilot.db'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.market_exchange == "binance" and settings.binance_base_url == "https://api.binance.com"


def candle_table(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "coinpilot.db") as connection:
        return connection.execute("SELECT * FROM ohlcv_candles ORDER BY symbol, open_time").fetchall()


@pytest.mark.demo
def test_demo_runs_on_a_fresh_home_and_prints_the_summary_and_again_on_the_same_home(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run("coinpilot_pipelines.cli", "demo", env=clean_env(home), cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    # All 21 days of the BTCUSDT recording: enough held-out bars for a champion to earn its place.
    assert "| BTCUSDT  |         30240 |      30240 |              100 |         0 |" in result.stdout
    assert "| XRPUSDT  |         30240 |      30240 |              100 |         0 |" in result.stdout
    assert "| climatology " in result.stdout and "| previous-return sign " in result.stdout
    assert "version 1 is the champion: promoted as the first champion: Brier skill vs climatology +" in result.stdout
    assert "| production (held-out) |" in result.stdout and "calibration report 1:" in result.stdout
    assert (tmp_path / "home" / "mlflow.db").exists()
    # The bundled feeds, bootstrapped through Dagster: Cointelegraph's four polls, cross-source duplicates.
    assert "news: 177 unique articles" in result.stdout
    assert "| cointelegraph         |       6 |    60 |    57 |         3 |            0 |" in result.stdout
    assert "| cointelegraph-trimmed |       6 |     2 |     0 |         0 |            2 |" in result.stdout
    assert "coinpilot ui" in result.stdout
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").exists()
    # The runs are recorded in the local Dagster instance for the UI to show.
    instance = dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster"))
    # candles + features per symbol, retrain, calibration, six executor replays, news
    assert len(instance.get_runs()) == 11
    assert "order_executor_job (shadow mode: no exchange call)" in result.stdout
    # Each replay runs on a clock just after its bar: what it finds there is carried to an end.
    rows = [line for line in result.stdout.splitlines() if re.match(r"\| BTCUSDT +\| model +\| (enter|exit) ", line)]
    assert rows and all(re.search(r"\| executed +\|", line) for line in rows), result.stdout
    instance.dispose()

    # The second demo on the same home: it succeeds, stores no bar again and changes none.
    first_candles = candle_table(home)
    again = run("coinpilot_pipelines.cli", "demo", env=clean_env(home), cwd=elsewhere)
    assert again.returncode == 0, again.stderr[-3000:]
    assert candle_table(home) == first_candles
    # Nothing outside COINPILOT_HOME: no mlflow.db or mlruns in the working directory, nothing beside the home.
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "home"]


@pytest.mark.demo
def test_a_demo_too_short_to_judge_a_model_says_plainly_that_none_beat_the_baseline(tmp_path: Path) -> None:
    result = run("coinpilot_pipelines.cli", "demo", "--days", "2", env=clean_env(tmp_path / "home"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("no model beat the climatology baseline: there is no champion, and the model strategy stays idle"
            in result.stdout)
    assert "version 1: no champion yet, and this model does not earn it: Brier skill vs climatology" in result.stdout
    assert "scoring and calibration need a champion: skipped" in result.stdout
    assert "calibration report" not in result.stdout and "| model " not in result.stdout


def test_db_upgrade_and_one_line_errors(tmp_path: Path, pg_url: str) -> None:
    ok = run("coinpilot_pipelines.cli", "db", "upgrade", "--dsn", pg_url, env=clean_env(tmp_path))
    assert ok.returncode == 0 and "is at revision" in ok.stdout
    bad = run("coinpilot_pipelines.cli", "db", "upgrade", "--dsn", "postgresql+psycopg://nobody@127.0.0.1:1/none",
              env=clean_env(tmp_path))
    assert bad.returncode == 1
    assert bad.stderr.startswith("coinpilot: error: cannot migrate database") and bad.stderr.count("\n") == 1
    scenario = run("coinpilot_pipelines.cli", "emulator", "--scenario", "nonsense", env=clean_env(tmp_path))
    assert scenario.returncode == 1 and "not a preset" in scenario.stderr and scenario.stderr.count("\n") == 1


@pytest.mark.parametrize(("name", "options"), [("features", ()), ("ingest", ()), ("sensor", ("--symbols", "12"))])
def test_benchmarks_run_end_to_end_on_a_small_window(name: str, options: tuple[str, ...], tmp_path: Path) -> None:
    # Timings are the benchmark's business, never a test's: this only proves the command works.
    result = run("coinpilot_pipelines.cli", "bench", name, "--days", "2", *options, env=clean_env(tmp_path),
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| bench | measurement | value | target | met |" in result.stdout
    assert f"| {name} |" in result.stdout


@pytest.mark.benchlive
@pytest.mark.timeout(540)
def test_bench_live_runs_the_daemon_and_prints_each_stage(tmp_path: Path) -> None:
    # Training on the recording, a backfill, the UI's start and a minute of warm-up: about 3 minutes.
    result = run("coinpilot_pipelines.cli", "bench", "live", "--symbols", "2", "--minutes", "1",
                 env=clean_env(tmp_path / "home", TMPDIR=str(tmp_path)), cwd=tmp_path, timeout=480)
    assert result.returncode == 0, result.stderr[-2000:]
    for stage in ("bar close -> stored", "bar close -> scored", "bar close -> order decision",
                  "yardstick: one bare klines request", "order_executor_job process start"):
        assert stage in result.stdout, result.stdout
