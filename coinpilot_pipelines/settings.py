"""Typed settings, read from environment variables in this one place.

Every other module receives a `Settings` (or the Dagster resources built from it) instead of
reading `os.environ` itself, so a bad value fails once, early, with the variable's name.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

from coinpilot_pipelines.emulator.feeds import DEFAULT_SOURCES
from coinpilot_pipelines.features.candle_features import FEATURE_COLUMNS
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.news.health import HealthThresholds
from coinpilot_pipelines.news.model import SOURCE_NAME_PATTERN, NewsFeed
from coinpilot_pipelines.trading.guards import Guards, GuardValueError, parse_guards
from coinpilot_pipelines.trading.risk import UPBIT_MIN_ORDER_KRW

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}(-[A-Z0-9]{2,20})?$")
DEFAULT_START_DATE = date(2023, 1, 1)
EXCHANGES = ("binance", "upbit")
# Where `coinpilot emulator` serves the bundled feeds by default; the demo and the UI point
# COINPILOT_NEWS_BASE_URL at their own emulator.
DEFAULT_NEWS_BASE_URL = "http://127.0.0.1:8765"
DEFAULT_NEWS_POLL_INTERVAL_S = 90
DEFAULT_UI_BASE_URL = "http://127.0.0.1:3000"  # the `coinpilot ui` address
_NAMED_FEED = re.compile(r"^([^=/:]+)=(https?://.*)$", re.IGNORECASE)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def validate_symbol(symbol: str, *, source: str = "symbol") -> str:
    if not SYMBOL_PATTERN.match(symbol):
        raise ConfigError(
            f"{source}: {symbol!r} is not a valid symbol "
            "(upper-case letters and digits, optionally QUOTE-BASE, e.g. BTCUSDT or KRW-BTC)"
        )
    return symbol


def _parse_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{name}: {raw!r} is not an http(s) URL")
    return value


def parse_news_feeds(raw: str, *, variable: str = "NEWS_RSS_FEEDS") -> tuple[NewsFeed, ...]:
    """A comma list of feed URLs, each optionally named ``name=URL``.

    An unnamed feed is named after its host (``www.`` dropped); two feeds on one host need names.
    """
    feeds = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        named = _NAMED_FEED.match(entry)
        name, url = (named.group(1).strip(), named.group(2)) if named else (None, entry)
        _parse_url(variable, url)  # validates; the URL itself is kept as written
        url = url.strip()
        name = name or re.sub(r"^www\.", "", urlsplit(url).hostname or "")
        if not SOURCE_NAME_PATTERN.match(name):
            raise ConfigError(
                f"{variable}: source name {name!r} must be 1-64 lower-case letters, digits, '.', '_' or '-' "
                "(write the feed as name=URL)"
            )
        feeds.append(NewsFeed(name, url))
    names = [f.source for f in feeds]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{variable}: several feeds are named {', '.join(repeated)}; name them apart as name=URL")
    return tuple(feeds)


def bundled_news_feeds(base_url: str) -> tuple[NewsFeed, ...]:
    """The real feeds bundled with the emulator, as served by the emulator at ``base_url``."""
    return tuple(NewsFeed(source, f"{base_url}/rss/{source}") for source in DEFAULT_SOURCES)


def _parse_number(name: str, raw: str, kind: type[int] | type[float], *, low: float, high: float | None = None,
                  low_inclusive: bool = True, high_inclusive: bool = True) -> int | float:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value):  # float() takes 'nan' and 'inf', which would slip past every bound
        raise ConfigError(f"{name}: {raw!r} is not a finite number")
    _check_bounds(name, raw, value, low=low, high=high, low_inclusive=low_inclusive, high_inclusive=high_inclusive)
    return value


def _check_bounds(name: str, raw: str, value: float | Decimal, *, low: float, high: float | None,
                  low_inclusive: bool, high_inclusive: bool) -> None:
    too_low = value < low if low_inclusive else value <= low
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        bounds = f"{'>=' if low_inclusive else '>'} {low:g}"
        if high is not None:
            bounds += f" and {'<=' if high_inclusive else '<'} {high:g}"
        raise ConfigError(f"{name}: {raw!r} must be {bounds}")


def env_number(env: Mapping[str, str], name: str, default: float, kind: type[int] | type[float],
               **bounds: float | bool) -> int | float:
    """A number from the environment, or ``default`` when the variable is unset or blank."""
    raw = env.get(name, "").strip()
    return _parse_number(name, raw, kind, **bounds) if raw else default


def probability(env: Mapping[str, str], name: str, default: float) -> float:
    """A probability threshold, strictly inside (0, 1)."""
    return env_number(env, name, default, float, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)


@dataclass(frozen=True)
class ContinuitySettings:
    """The continuity scan, the live kline sensor and gap repair."""

    scan_days: int = 365
    # Under the Dagster daemon's 5 s sensor loop, so both live sensors tick on every loop: at exactly
    # 5 s, a sensor whose last tick started a moment after its loop is not due on the next loop and
    # waits for the one after, and ticks every 10 s (seen as 10 s more from a bar's close to its decision).
    live_poll_interval_s: int = 4
    live_tick_budget_s: float = 10.0
    live_lookback_bars: int = 5
    live_catchup_bars: int = 1440
    repair_empty_attempts: int = 3
    repair_empty_spacing_s: float = 60.0
    repair_max_segments: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ContinuitySettings:
        return cls(
            scan_days=env_number(env, "CONTINUITY_SCAN_DAYS", 365, int, low=1, high=3660),
            live_poll_interval_s=env_number(env, "LIVE_KLINE_POLL_INTERVAL_SEC", 4, int, low=1, high=3600),
            live_tick_budget_s=env_number(env, "LIVE_KLINE_TICK_BUDGET_SEC", 10.0, float, low=0.1, high=600),
            live_lookback_bars=env_number(env, "LIVE_KLINE_LOOKBACK_BARS", 5, int, low=0, high=1000),
            live_catchup_bars=env_number(env, "LIVE_KLINE_CATCHUP_BARS", 1440, int, low=1, high=100_000),
            repair_empty_attempts=env_number(env, "GAP_REPAIR_EMPTY_ATTEMPTS", 3, int, low=1, high=100),
            repair_empty_spacing_s=env_number(env, "GAP_REPAIR_EMPTY_SPACING_SEC", 60.0, float, low=0,
                                              low_inclusive=False, high=86_400),
            repair_max_segments=env_number(env, "GAP_REPAIR_MAX_SEGMENTS", 8, int, low=1, high=1000),
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
    drift_psi_threshold: float = 0.25
    bootstrap_block_bars: int = 240  # 4 hours of 1m bars
    mlflow_ui_url: str = "http://127.0.0.1:5000"  # where metadata links to MLflow runs and model versions

    def __post_init__(self) -> None:
        # Bootstrap blocks must hold whole labels: a label spans its horizon, and neighbours overlap.
        if self.bootstrap_block_bars < self.label_horizon_bars:
            raise ConfigError(f"PROMOTION_BOOTSTRAP_BLOCK_BARS: {self.bootstrap_block_bars} is shorter than "
                              f"LABEL_HORIZON_BARS ({self.label_horizon_bars}); a bootstrap block must be at least "
                              "one label horizon long")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModelSettings:
        drift = tuple(f.strip() for f in env.get("AUTO_RETRAIN_DRIFT_FEATURES", "").split(",") if f.strip())
        unknown = set(drift) - set(FEATURE_COLUMNS)
        if unknown:
            raise ConfigError(f"AUTO_RETRAIN_DRIFT_FEATURES: unknown features {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(FEATURE_COLUMNS)})")
        name = env.get("COINPILOT_MODEL_NAME", "").strip() or cls.model_name
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ConfigError(f"COINPILOT_MODEL_NAME: {name!r} is not a valid model name")
        return cls(
            model_name=name,
            train_window_days=env_number(env, "TRAIN_WINDOW_DAYS", 30, int, low=1, high=3660),
            label_horizon_bars=env_number(env, "LABEL_HORIZON_BARS", 15, int, low=1, high=10_000),
            label_dead_band=env_number(env, "LABEL_DEAD_BAND", 0.0005, float, low=0.0, high=0.1),
            promote_min_auc_improve=env_number(env, "AUTO_PROMOTE_MIN_AUC_IMPROVE", 0.01, float, low=0.0, high=1),
            promote_max_brier_degrade=env_number(env, "AUTO_PROMOTE_MAX_BRIER_DEGRADE", 0.005, float, low=0.0, high=1),
            promote_max_ece_degrade=env_number(env, "AUTO_PROMOTE_MAX_ECE_DEGRADE", 0.01, float, low=0.0, high=1),
            inference_threshold=probability(env, "INFERENCE_PROB_THRESHOLD", 0.5),
            inference_lookback_bars=env_number(env, "INFERENCE_LOOKBACK_BARS", 1440, int, low=1, high=100_000),
            calibration_live_window_days=env_number(env, "CALIBRATION_LIVE_WINDOW_DAYS", 7, int, low=1, high=3660),
            retrain_ece_gap_abs=env_number(env, "AUTO_RETRAIN_ECE_GAP_ABS", 0.05, float, low=0.0, high=1),
            retrain_ece_gap_rel=env_number(env, "AUTO_RETRAIN_ECE_GAP_REL", 0.5, float, low=0.0, high=100),
            retrain_ece_streak=env_number(env, "AUTO_RETRAIN_ECE_STREAK", 2, int, low=1, high=1000),
            drift_z_threshold=env_number(env, "DRIFT_Z_THRESHOLD", 3.0, float, low=0.0, low_inclusive=False,
                                         high=1000),
            drift_features=drift or cls.drift_features,
            retrain_cooldown_s=env_number(env, "AUTO_RETRAIN_COOLDOWN_SEC", 6 * 3600, int, low=1, high=30 * 86_400),
            retrain_cron=_cron(env, "RETRAIN_CRON", cls.retrain_cron),
            calibration_cron=_cron(env, "CALIBRATION_CRON", cls.calibration_cron),
            drift_psi_threshold=env_number(env, "DRIFT_PSI_THRESHOLD", 0.25, float, low=0.0, low_inclusive=False, high=10),
            bootstrap_block_bars=env_number(env, "PROMOTION_BOOTSTRAP_BLOCK_BARS", 240, int, low=1, high=100_000),
            mlflow_ui_url=_parse_url("COINPILOT_MLFLOW_UI_URL", env.get("COINPILOT_MLFLOW_UI_URL", "").strip()
                                     or cls.mlflow_ui_url),
        )


# The largest amounts a setting may hold: a typo of a few zeros stops at load instead of trading.
MAX_QUOTE_AMOUNT = Decimal("1000000")  # in the signal symbol's quote currency (USDT for BTCUSDT)
MAX_KRW_AMOUNT = Decimal("100000000")


def _decimal(env: Mapping[str, str], name: str, default: str, *, low: str, high: str,
             low_inclusive: bool = True) -> Decimal:
    raw = env.get(name, "").strip() or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name}: {raw!r} is not a decimal number") from None
    if not value.is_finite():
        raise ConfigError(f"{name}: {raw!r} is not a finite number")
    _check_bounds(name, raw, value, low=Decimal(low), high=Decimal(high), low_inclusive=low_inclusive,
                  high_inclusive=True)
    return value


def _money(env: Mapping[str, str], name: str, default: str, ceiling: Decimal) -> Decimal:
    """A positive amount of money, at most ``ceiling``."""
    return _decimal(env, name, default, low="0", high=str(ceiling), low_inclusive=False)


@dataclass(frozen=True)
class TradingSettings:
    """The order executor: risk limits, paper trading, order sizes and polling.

    The live-trading guards and the secrets (Upbit keys, the Anthropic key) are not kept here: the
    guards are read from the environment when a run starts (`trading/guards.py` parses them and
    decides the mode), the secrets by `Secrets`. Loading the settings still parses the guards, so a
    malformed guard value fails at load, with its name, before any run.
    """

    analyst_model: str = "claude-haiku-4-5"
    exit_probability: float = 0.45  # a model position closes when its probability drops below this
    take_profit: Decimal = Decimal("0.01")
    stop_loss: Decimal = Decimal("0.005")
    max_holding_hours: int = 48
    entry_ttl_bars: int = 5  # an entry not filled within this many bars of its own bar expires
    paper_notional: Decimal = Decimal("100")  # quote currency of the signal symbol
    fee_rate: Decimal = Decimal("0.0005")
    slippage: Decimal = Decimal("0.0005")
    daily_loss_limit: Decimal = Decimal("50")
    max_position_notional: Decimal = Decimal("200")
    max_open_positions: int = 3
    losing_streak: int = 3
    cooldown_hours: int = 24
    order_krw: Decimal = Decimal("10000")  # what a live or test entry spends on Upbit
    max_order_krw: Decimal = Decimal("50000")  # no order sent to Upbit is larger than this
    market_map: tuple[tuple[str, str], ...] = ()  # signal symbol -> Upbit market overrides
    order_poll_interval_s: float = 5.0
    order_max_polls: int = 24

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TradingSettings:
        try:
            parse_guards(env)  # a malformed guard fails here, loudly, before any run starts
        except GuardValueError as exc:
            raise ConfigError(str(exc)) from None
        pairs = []
        for entry in (e.strip() for e in env.get("UPBIT_MARKET_MAP", "").split(",") if e.strip()):
            symbol, _, market = entry.partition("=")
            if not SYMBOL_PATTERN.match(symbol.strip()) or not re.fullmatch(r"[A-Z]{2,10}-[A-Z0-9]{2,20}", market.strip()):
                raise ConfigError(f"UPBIT_MARKET_MAP: {entry!r} is not SYMBOL=QUOTE-BASE (e.g. BTCUSDT=KRW-BTC)")
            pairs.append((symbol.strip(), market.strip()))
        analyst_model = env.get("COINPILOT_ANALYST_MODEL", "").strip() or cls.analyst_model
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,63}", analyst_model):
            raise ConfigError(f"COINPILOT_ANALYST_MODEL: {analyst_model!r} is not a model name (e.g. claude-haiku-4-5)")
        max_order_krw = _money(env, "RISK_MAX_ORDER_KRW", "50000", MAX_KRW_AMOUNT)
        order_krw = _decimal(env, "UPBIT_ORDER_KRW", "10000", low=str(UPBIT_MIN_ORDER_KRW), high=str(max_order_krw))
        return cls(
            analyst_model=analyst_model,
            exit_probability=probability(env, "INFERENCE_EXIT_PROB_THRESHOLD", 0.45),
            take_profit=_decimal(env, "PAPER_TAKE_PROFIT", "0.01", low="0", high="0.5", low_inclusive=False),
            stop_loss=_decimal(env, "PAPER_STOP_LOSS", "0.005", low="0", high="0.5", low_inclusive=False),
            max_holding_hours=env_number(env, "PAPER_MAX_HOLDING_HOURS", 48, int, low=1, high=24 * 366),
            entry_ttl_bars=env_number(env, "ENTRY_SIGNAL_TTL_BARS", 5, int, low=1, high=10_000),
            paper_notional=_money(env, "PAPER_TRADE_NOTIONAL", "100", MAX_QUOTE_AMOUNT),
            fee_rate=_decimal(env, "PAPER_FEE_RATE", "0.0005", low="0", high="0.05"),
            slippage=_decimal(env, "PAPER_SLIPPAGE", "0.0005", low="0", high="0.05"),
            daily_loss_limit=_money(env, "RISK_DAILY_LOSS_LIMIT", "50", MAX_QUOTE_AMOUNT),
            max_position_notional=_money(env, "RISK_MAX_POSITION_NOTIONAL", "200", MAX_QUOTE_AMOUNT),
            max_open_positions=env_number(env, "RISK_MAX_OPEN_POSITIONS", 3, int, low=1, high=1000),
            losing_streak=env_number(env, "RISK_LOSING_STREAK", 3, int, low=1, high=1000),
            cooldown_hours=env_number(env, "RISK_COOLDOWN_HOURS", 24, int, low=1, high=24 * 366),
            order_krw=order_krw,
            max_order_krw=max_order_krw,
            market_map=tuple(pairs),
            order_poll_interval_s=env_number(env, "LIVE_ORDER_POLL_INTERVAL_SEC", 5.0, float, low=0,
                                             low_inclusive=False, high=600),
            order_max_polls=env_number(env, "LIVE_ORDER_MAX_POLLS", 24, int, low=1, high=10_000),
        )


def _cron(env: Mapping[str, str], name: str, default: str) -> str:
    # Dagster's own check, so an expression that passes here also passes `dagster definitions validate`.
    from dagster._utils.schedules import is_valid_cron_string

    value = env.get(name, "").strip() or default
    if not is_valid_cron_string(value):
        raise ConfigError(f"{name}: {value!r} is not a valid five-field cron expression (e.g. '30 3 * * *')")
    return value


@dataclass(frozen=True)
class Secrets:
    """The API keys and the alert webhook, read from the environment and kept out of every repr, log and config."""

    upbit_access_key: str = field(default="", repr=False)
    upbit_secret_key: str = field(default="", repr=False)
    anthropic_api_key: str = field(default="", repr=False)
    # A Slack-style incoming webhook URL is its own credential: whoever has it can post.
    alert_webhook_url: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if env is None else env
        webhook = env.get("COINPILOT_ALERT_WEBHOOK_URL", "").strip()
        if webhook and not re.match(r"^https?://[^\s/]+", webhook):
            # Unlike the other URL settings, the value is not repeated: it is a secret.
            raise ConfigError("COINPILOT_ALERT_WEBHOOK_URL: not an http(s) URL (the value is not shown)")
        return cls(env.get("UPBIT_ACCESS_KEY", "").strip(), env.get("UPBIT_SECRET_KEY", "").strip(),
                   env.get("ANTHROPIC_API_KEY", "").strip(), alert_webhook_url=webhook)


def exchange_pool_limit(env: Mapping[str, str] | None = None) -> int:
    """EXCHANGE_API_POOL_LIMIT: concurrent steps calling the exchange's market-data API (see the README)."""
    return env_number(os.environ if env is None else env, "EXCHANGE_API_POOL_LIMIT", 4, int, low=1, high=64)


def live_guards(env: Mapping[str, str] | None = None) -> Guards:
    """The guard variables as the environment holds them now (a run reads them when it starts)."""
    try:
        return parse_guards(os.environ if env is None else env)
    except GuardValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str = field(repr=False)  # may carry a password
    symbols: tuple[str, ...]
    interval: Interval
    start_date: date
    market_exchange: str
    binance_base_url: str
    upbit_base_url: str
    mlflow_tracking_uri: str = field(repr=False)  # may carry credentials
    news_feeds: tuple[NewsFeed, ...] = field(default_factory=tuple)
    news_poll_interval_s: int = DEFAULT_NEWS_POLL_INTERVAL_S
    news_health: HealthThresholds = field(default_factory=HealthThresholds)
    continuity: ContinuitySettings = field(default_factory=ContinuitySettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    trading: TradingSettings = field(default_factory=TradingSettings)
    ui_base_url: str = DEFAULT_UI_BASE_URL  # where alerts link to runs and assets

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

        news_feeds = parse_news_feeds(get("NEWS_RSS_FEEDS", "")) or bundled_news_feeds(
            _parse_url("COINPILOT_NEWS_BASE_URL", get("COINPILOT_NEWS_BASE_URL", DEFAULT_NEWS_BASE_URL))
        )

        health = HealthThresholds()
        news_health = HealthThresholds(
            stall_after_s=env_number(env, "NEWS_SOURCE_STALL_THRESHOLD_SEC", health.stall_after_s, int, low=1),
            min_ratio=env_number(env, "NEWS_DEDUP_MIN_RATIO", health.min_ratio, float, low=0, high=1),
            ratio_streak=env_number(env, "NEWS_DEDUP_RATIO_STREAK", health.ratio_streak, int, low=1),
            volatility_window=env_number(env, "NEWS_DEDUP_VOLATILITY_WINDOW", health.volatility_window, int, low=2),
            # the standard deviation of values in 0..1 is at most 0.5
            volatility_threshold=env_number(env, "NEWS_DEDUP_VOLATILITY_THRESHOLD", health.volatility_threshold, float,
                                        low=0, high=0.5, low_inclusive=False),
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
            news_feeds=news_feeds,
            news_poll_interval_s=env_number(env, "NEWS_POLL_INTERVAL", DEFAULT_NEWS_POLL_INTERVAL_S, int, low=1),
            news_health=news_health,
            continuity=ContinuitySettings.from_env(env),
            models=ModelSettings.from_env(env),
            trading=TradingSettings.from_env(env),
            ui_base_url=_parse_url("COINPILOT_UI_BASE_URL", get("COINPILOT_UI_BASE_URL", DEFAULT_UI_BASE_URL)),
        )

