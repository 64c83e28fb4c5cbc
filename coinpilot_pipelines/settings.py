"""Typed settings, read from environment variables in this one place.

Every other module receives a `Settings` (or the Dagster resources built from it) instead of
reading `os.environ` itself, so a bad value fails once, early, with the variable's name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from coinpilot_pipelines.features.candle_features import FEATURE_COLUMNS
from coinpilot_pipelines.market.intervals import Interval

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}(-[A-Z0-9]{2,20})?$")
DEFAULT_START_DATE = date(2023, 1, 1)
EXCHANGES = ("binance", "upbit")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def validate_symbol(symbol: str, *, source: str = "symbol") -> str:
    if not SYMBOL_PATTERN.match(symbol):
        raise ConfigError(
            f"{source}: {symbol!r} is not a valid symbol "
            "(upper-case letters and digits, optionally QUOTE-BASE, e.g. BTCUSDT or KRW-BTC)"
        )
    return symbol


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name}: {raw!r} is not {kind}") from None
    if value < minimum:
        raise ConfigError(f"{name}: {raw} is below the minimum of {minimum:g}")
    return value


@dataclass(frozen=True)
class ContinuitySettings:
    """The continuity scan, the live kline sensor and gap repair."""

    scan_days: int = 365
    live_poll_interval_s: int = 30
    live_tick_budget_s: float = 10.0
    live_lookback_bars: int = 5
    repair_empty_attempts: int = 3
    repair_empty_spacing_s: float = 60.0
    repair_max_segments: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ContinuitySettings:
        return cls(
            scan_days=int(_number(env, "CONTINUITY_SCAN_DAYS", 365, minimum=1, integer=True)),
            live_poll_interval_s=int(_number(env, "LIVE_KLINE_POLL_INTERVAL_SEC", 30, minimum=5, integer=True)),
            live_tick_budget_s=_number(env, "LIVE_KLINE_TICK_BUDGET_SEC", 10.0, minimum=0.1),
            live_lookback_bars=int(_number(env, "LIVE_KLINE_LOOKBACK_BARS", 5, minimum=0, integer=True)),
            repair_empty_attempts=int(_number(env, "GAP_REPAIR_EMPTY_ATTEMPTS", 3, minimum=1, integer=True)),
            repair_empty_spacing_s=_number(env, "GAP_REPAIR_EMPTY_SPACING_SEC", 60.0, minimum=0),
            repair_max_segments=int(_number(env, "GAP_REPAIR_MAX_SEGMENTS", 8, minimum=1, integer=True)),
        )


@dataclass(frozen=True)
class ModelSettings:
    """Training, promotion, inference and calibration monitoring."""

    model_name: str = "coinpilot-signal"
    train_window_days: int = 30
    label_horizon_bars: int = 15
    label_dead_band: float = 0.0005
    promote_min_auc_improve: float = 0.01
    promote_max_brier_degrade: float = 0.005
    promote_max_ece_degrade: float = 0.01
    inference_threshold: float = 0.5
    inference_lookback_bars: int = 1440
    calibration_live_window_days: int = 7
    retrain_ece_gap_abs: float = 0.05
    retrain_ece_gap_rel: float = 0.5
    retrain_ece_streak: int = 2
    drift_z_threshold: float = 3.0
    drift_features: tuple[str, ...] = ("ret_1", "rolling_vol_20", "rsi_14", "vol_ratio")
    retrain_cooldown_s: int = 6 * 3600
    retrain_cron: str = "30 3 * * *"
    calibration_cron: str = "15 * * * *"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModelSettings:
        drift = tuple(f.strip() for f in env.get("AUTO_RETRAIN_DRIFT_FEATURES", "").split(",") if f.strip())
        unknown = set(drift) - set(FEATURE_COLUMNS)
        if unknown:
            raise ConfigError(f"AUTO_RETRAIN_DRIFT_FEATURES: unknown features {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(FEATURE_COLUMNS)})")
        threshold = _number(env, "INFERENCE_PROB_THRESHOLD", 0.5, minimum=0.0)
        if threshold > 1:
            raise ConfigError(f"INFERENCE_PROB_THRESHOLD: {threshold} is not a probability")
        name = env.get("COINPILOT_MODEL_NAME", "").strip() or cls.model_name
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ConfigError(f"COINPILOT_MODEL_NAME: {name!r} is not a valid model name")
        return cls(
            model_name=name,
            train_window_days=int(_number(env, "TRAIN_WINDOW_DAYS", 30, minimum=1, integer=True)),
            label_horizon_bars=int(_number(env, "LABEL_HORIZON_BARS", 15, minimum=1, integer=True)),
            label_dead_band=_number(env, "LABEL_DEAD_BAND", 0.0005, minimum=0.0),
            promote_min_auc_improve=_number(env, "AUTO_PROMOTE_MIN_AUC_IMPROVE", 0.01, minimum=0.0),
            promote_max_brier_degrade=_number(env, "AUTO_PROMOTE_MAX_BRIER_DEGRADE", 0.005, minimum=0.0),
            promote_max_ece_degrade=_number(env, "AUTO_PROMOTE_MAX_ECE_DEGRADE", 0.01, minimum=0.0),
            inference_threshold=threshold,
            inference_lookback_bars=int(_number(env, "INFERENCE_LOOKBACK_BARS", 1440, minimum=1, integer=True)),
            calibration_live_window_days=int(_number(env, "CALIBRATION_LIVE_WINDOW_DAYS", 7, minimum=1, integer=True)),
            retrain_ece_gap_abs=_number(env, "AUTO_RETRAIN_ECE_GAP_ABS", 0.05, minimum=0.0),
            retrain_ece_gap_rel=_number(env, "AUTO_RETRAIN_ECE_GAP_REL", 0.5, minimum=0.0),
            retrain_ece_streak=int(_number(env, "AUTO_RETRAIN_ECE_STREAK", 2, minimum=1, integer=True)),
            drift_z_threshold=_number(env, "DRIFT_Z_THRESHOLD", 3.0, minimum=0.0),
            drift_features=drift or cls.drift_features,
            retrain_cooldown_s=int(_number(env, "AUTO_RETRAIN_COOLDOWN_SEC", 6 * 3600, minimum=0, integer=True)),
            retrain_cron=_cron(env, "RETRAIN_CRON", cls.retrain_cron),
            calibration_cron=_cron(env, "CALIBRATION_CRON", cls.calibration_cron),
        )


def _cron(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if len(value.split()) != 5:
        raise ConfigError(f"{name}: {value!r} is not a five-field cron expression")
    return value


def _parse_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{name}: {raw!r} is not an http(s) URL")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    symbols: tuple[str, ...]
    interval: Interval
    start_date: date
    market_exchange: str
    binance_base_url: str
    upbit_base_url: str
    mlflow_tracking_uri: str
    news_feeds: tuple[str, ...] = field(default_factory=tuple)
    continuity: ContinuitySettings = field(default_factory=ContinuitySettings)
    models: ModelSettings = field(default_factory=ModelSettings)

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def market_base_url(self) -> str:
        return self.binance_base_url if self.market_exchange == "binance" else self.upbit_base_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            value = env.get(name, "")
            return value.strip() if value.strip() else default

        home = Path(get("COINPILOT_HOME", "./.coinpilot")).expanduser().resolve()
        database_url = get("COINPILOT_DATABASE_URL", f"sqlite:///{home / 'coinpilot.db'}")
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", database_url):
            raise ConfigError(
                "COINPILOT_DATABASE_URL: expected sqlite:///PATH or postgresql+psycopg://..., "
                f"got a URL with scheme {database_url.split(':', 1)[0]!r}"
            )

        symbols = tuple(
            validate_symbol(s.strip(), source="COINPILOT_SYMBOLS")
            for s in get("COINPILOT_SYMBOLS", "BTCUSDT,XRPUSDT").split(",")
            if s.strip()
        )
        if not symbols:
            raise ConfigError("COINPILOT_SYMBOLS: no symbol given")
        if len(set(symbols)) != len(symbols):
            raise ConfigError(f"COINPILOT_SYMBOLS: duplicate symbols in {','.join(symbols)}")

        try:
            interval = Interval.parse(get("COINPILOT_INTERVAL", "1m"))
        except ValueError as exc:
            raise ConfigError(f"COINPILOT_INTERVAL: {exc}") from None

        raw_start = get("COINPILOT_START_DATE", DEFAULT_START_DATE.isoformat())
        try:
            start_date = date.fromisoformat(raw_start)
        except ValueError:
            raise ConfigError(
                f"COINPILOT_START_DATE: {raw_start!r} is not a date (YYYY-MM-DD)"
            ) from None

        exchange = get("COINPILOT_MARKET_EXCHANGE", "binance").lower()
        if exchange not in EXCHANGES:
            raise ConfigError(
                f"COINPILOT_MARKET_EXCHANGE: {exchange!r} is not one of {', '.join(EXCHANGES)}"
            )

        feeds = tuple(
            _parse_url("NEWS_RSS_FEEDS", f) for f in get("NEWS_RSS_FEEDS", "").split(",") if f.strip()
        )

        return cls(
            home=home,
            database_url=database_url,
            symbols=symbols,
            interval=interval,
            start_date=start_date,
            market_exchange=exchange,
            binance_base_url=_parse_url(
                "COINPILOT_BINANCE_BASE_URL", get("COINPILOT_BINANCE_BASE_URL", "https://api.binance.com")
            ),
            upbit_base_url=_parse_url(
                "COINPILOT_UPBIT_BASE_URL", get("COINPILOT_UPBIT_BASE_URL", "https://api.upbit.com")
            ),
            mlflow_tracking_uri=get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
            news_feeds=feeds,
            continuity=ContinuitySettings.from_env(env),
            models=ModelSettings.from_env(env),
        )

