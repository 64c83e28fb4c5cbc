"""Scoring follow-ups: which champion scores (the registry is asked only when that may have changed),
and which outcomes a live tick fills in."""

from __future__ import annotations

from datetime import timedelta, timezone

from coinpilot_pipelines.clients.mlflow_registry import RegisteredModel
from coinpilot_pipelines.ml.inference import ChampionCache, realize
from coinpilot_pipelines.ml.labels import LabelSpec
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.models import log_inference, unrealized
from coinpilot_pipelines.storage.runtime_state import champion_key, record_runtime_value

from .trading_helpers import BTC, MARKET_START, stored_market

UTC = timezone.utc


class CountingRegistry:
    """A model registry's answers, with its lookups counted: the alias, a version's model, a run's parameters."""

    tracking_uri = "sqlite:///registry-under-test.db"
    model_name = "coinpilot-signal"

    def __init__(self, version: str) -> None:
        self.version = version
        self.asked = 0
        self.loaded: list[str] = []

    def alias_version(self, alias: str) -> RegisteredModel:
        self.asked += 1
        return RegisteredModel(self.version, f"run-{self.version}")

    def load(self, version: str) -> object:
        self.loaded.append(version)
        return object()

    def run_params(self, run_id: str) -> dict[str, str]:
        return {"label_horizon_bars": "15", "label_dead_band": "0.0005"}


def test_the_registry_is_asked_again_only_after_a_recorded_decision_or_the_recheck(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    registry, cache, start = CountingRegistry("1"), ChampionCache(recheck=timedelta(minutes=10)), MARKET_START
    for minute in range(10):
        assert cache.current(registry, engine, start + timedelta(minutes=minute)).version == "1"
    assert registry.asked == 1 and registry.loaded == ["1"]

    # The promotion step records its champion as it moves the alias: the next look sees version 2.
    registry.version = "2"
    record_runtime_value(engine, champion_key(registry.model_name), "2", now=start)
    assert cache.current(registry, engine, start + timedelta(minutes=9, seconds=30)).version == "2"
    assert registry.asked == 2 and registry.loaded == ["1", "2"]

    # An alias moved by hand, with no decision recorded, is seen once the recheck has passed.
    registry.version = "3"
    assert cache.current(registry, engine, start + timedelta(minutes=19)).version == "2"
    assert cache.current(registry, engine, start + timedelta(minutes=19, seconds=30)).version == "3"
    assert registry.asked == 3


def _score(minute: int) -> dict:
    return {"exchange": BTC.exchange, "symbol": BTC.symbol, "interval": BTC.interval.code,
            "open_time": MARKET_START + timedelta(minutes=minute), "model_name": "coinpilot-signal",
            "model_version": "1", "feature_set_version": "v1", "probability": 0.6, "threshold": 0.55,
            "decision": "long", "horizon_bars": 5, "scored_at": MARKET_START + timedelta(minutes=minute + 1)}


def test_a_tick_fills_the_outcomes_from_its_window_and_a_full_pass_every_other(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    stored_market(sqlite_url, emulator.url, minutes=60)
    engine = get_engine(sqlite_url)
    log_inference(engine, [_score(2), _score(40)])
    labels, now = LabelSpec(horizon_bars=5, dead_band=0.0), MARKET_START + timedelta(hours=1, seconds=5)

    # A tick's window: an old score (its outcome bar missing in an outage, say) is not read back to.
    assert realize(engine, BTC, labels, now, since=MARKET_START + timedelta(minutes=30)) == 1
    assert unrealized(engine, BTC)["open_time"].tolist() == [MARKET_START + timedelta(minutes=2)]
    # The calibration job's pass takes every score still pending.
    assert realize(engine, BTC, labels, now) == 1
    assert unrealized(engine, BTC).empty
