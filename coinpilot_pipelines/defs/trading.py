"""The guarded order executor in Dagster: an op job and the sensor that starts it."""

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.clients.anthropic_analyst import AnthropicAnalyst
from coinpilot_pipelines.clients.http import RetryPolicy
from coinpilot_pipelines.clients.upbit.exchange import UpbitExchangeClient
from coinpilot_pipelines.clock import Clock, parse_utc_time
from coinpilot_pipelines.defs.images import png_markdown
from coinpilot_pipelines.defs.pools import ORDER_POOL
from coinpilot_pipelines.defs.resources import NO_CONFIG, DatabaseResource, MarketDataResource
from coinpilot_pipelines.defs.runs import describe, runs_in_progress
from coinpilot_pipelines.pictures.trading import trades_and_equity
from coinpilot_pipelines.settings import TradingSettings, live_guards
from coinpilot_pipelines.storage.candles import latest_open_time
from coinpilot_pipelines.storage.features import read_closes
from coinpilot_pipelines.storage.runtime_state import TRADE_MODE_KEY, record_runtime_value
from coinpilot_pipelines.storage.trading import closed_trades, open_trades
from coinpilot_pipelines.trading.executor import Executor, ExecutorSettings
from coinpilot_pipelines.trading.guards import GuardInputs, resolve_mode
from coinpilot_pipelines.trading.risk import RiskLimits
from coinpilot_pipelines.trading.signals import ExitRules

# One executor at a time (a tag concurrency limit in dagster.yaml), and never re-run whole by
# Dagster's run retries: a retry could only repeat what the identifiers already settle.
EXECUTOR_TAGS = {"coinpilot/exclusive": "order-executor", "dagster/max_retries": "0"}
CHARTED_PRICE = timedelta(days=1)  # the price panels: the day up to the latest entry or exit


@dataclass(frozen=True)
class UpbitExchangeResource:
    """Upbit's exchange API, with the keys from UPBIT_ACCESS_KEY / UPBIT_SECRET_KEY (never run config)."""

    base_url: str = field(default="https://api.upbit.com", repr=False)
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    timeout_s: float = 10.0

    def keys_set(self) -> bool:
        return bool(self.access_key and self.secret_key)

    def client(self) -> UpbitExchangeClient | None:
        if not self.keys_set():
            return None
        return UpbitExchangeClient(self.base_url, self.access_key, self.secret_key,
                                   policy=RetryPolicy(max_attempts=4, base_delay_s=0.5, timeout_s=self.timeout_s))


@dataclass(frozen=True)
class AnalystResource:
    """The AI analyst; without ANTHROPIC_API_KEY reviews are recorded as skipped."""

    api_key: str = field(default="", repr=False)
    model: str = "claude-haiku-4-5"
    timeout_s: float = 20.0

    def analyst(self) -> AnthropicAnalyst | None:
        return AnthropicAnalyst(self.api_key, self.model, timeout_s=self.timeout_s) if self.api_key else None


def trades_chart(engine: Engine, market_data: MarketDataResource) -> dict[str, dg.MetadataValue]:
    """Price with the paper trades' entries and exits over the day up to the latest of them, and the
    equity curve of every closed trade; nothing before the first trade."""
    trades = pd.concat([closed_trades(engine), open_trades(engine)], ignore_index=True)
    if trades.empty:
        return {}
    latest = pd.concat([trades["entry_time"], trades["exit_time"].dropna()]).max().to_pydatetime()
    start, end = latest - CHARTED_PRICE, latest + market_data.series(trades["symbol"].iloc[0]).interval.delta
    recent = trades[(trades["entry_time"] >= start) | (trades["exit_time"] >= start)]
    prices = {symbol: read_closes(engine, market_data.series(symbol), start, end)
              for symbol in sorted(recent["symbol"].unique())}
    png = trades_and_equity(prices, trades, title=f"paper trades up to {latest:%Y-%m-%d %H:%M} UTC")
    return {"trades_chart": png_markdown(png, "paper trades: price, entries and exits, equity and drawdown")}


class SaferMode(Enum):
    """The modes a run may ask for; an enum, so run config cannot pass ``{"env": ...}`` here."""

    shadow = "shadow"
    test = "test"
    live = "live"


class ModeConfig(dg.Config):
    mode: SaferMode | None = None  # ask for a safer mode than the guards allow (never a less safe one)


# Legacy config schema: Pythonic `str` fields accept Dagster's {"env": NAME} source, dg.String does not.
SIGNAL_WINDOW_CONFIG = {
    "up_to": dg.Field(dg.Noneable(dg.String), default_value=None,
                      description="ISO time: signals from the data stored up to here (default: the newest bar)"),
}


def executor_settings(settings: TradingSettings, entry_threshold: float) -> ExecutorSettings:
    return ExecutorSettings(
        profile="default",
        entry_threshold=entry_threshold,
        exit_rules=ExitRules(settings.exit_probability, settings.take_profit, settings.stop_loss,
                             timedelta(hours=settings.max_holding_hours)),
        limits=RiskLimits(settings.daily_loss_limit, settings.max_position_notional, settings.max_open_positions,
                          settings.losing_streak, timedelta(hours=settings.cooldown_hours)),
        paper_notional=settings.paper_notional, fee_rate=settings.fee_rate, slippage=settings.slippage,
        order_krw=settings.order_krw, max_order_krw=settings.max_order_krw, market_map=dict(settings.market_map),
        signal_lookback_bars=60, entry_ttl_bars=settings.entry_ttl_bars,
        poll_interval_s=settings.order_poll_interval_s, max_polls=settings.order_max_polls,
    )


def build_trading_definitions(settings: TradingSettings, entry_threshold: float, symbols: tuple[str, ...],
                              scan_interval_s: int = 5) -> dict[str, list]:
    exec_settings = executor_settings(settings, entry_threshold)

    def executor(context: dg.OpExecutionContext, mode: str, database: DatabaseResource,
                 market_data: MarketDataResource, upbit: UpbitExchangeResource, clock: Clock,
                 analyst: AnalystResource | None = None) -> Executor:
        return Executor(
            engine=database.engine(), series_list=[market_data.series(s) for s in symbols],
            settings=exec_settings, mode=mode,
            upbit=upbit.client() if mode in ("test", "live") else None,
            analyst=analyst.analyst() if analyst is not None else None,
            now=clock.now, log=context.log.info,
        )

    @dg.op(description="Decide the execution mode from the guards in this process's environment (and a "
           "safer mode asked for in run config).")
    def resolve_trading_mode(context: dg.OpExecutionContext, config: ModeConfig, upbit: dg.ResourceParam[UpbitExchangeResource],
                             database: dg.ResourceParam[DatabaseResource], clock: dg.ResourceParam[Clock]) -> dg.Output[str]:
        guards = GuardInputs(live_guards(), bool(upbit.access_key), bool(upbit.secret_key))
        decision = resolve_mode(guards, config.mode.value if config.mode else None)
        context.log.info(f"effective mode {decision.describe()}")
        context.instance.add_run_tags(context.run_id, {"coinpilot/effective_mode": decision.mode})
        record_runtime_value(database.engine(), TRADE_MODE_KEY, decision.mode, now=clock.now(), dagster_run_id=context.run_id)
        return dg.Output(decision.mode, metadata={"effective_mode": decision.mode,
                                                   "why": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons))})

    @dg.op(config_schema=SIGNAL_WINDOW_CONFIG,
           description="Compute entry and exit signals from the stored inference log, features and bars.")
    def collect_signals(context: dg.OpExecutionContext, mode: str,
                        database: dg.ResourceParam[DatabaseResource], market_data: dg.ResourceParam[MarketDataResource],
                        upbit: dg.ResourceParam[UpbitExchangeResource],
                        clock: dg.ResourceParam[Clock]) -> dg.Output[list[int]]:
        raw = context.op_config["up_to"]
        up_to = parse_utc_time(raw, "up_to") if raw else None
        runner = executor(context, mode, database, market_data, upbit, clock)
        signal_ids = runner.collect_signals(up_to)
        return dg.Output(signal_ids, metadata={"model_strategy": runner.model_strategy()})

    @dg.op(config_schema=NO_CONFIG, description="Risk limits: daily loss, position size, open positions, losing-streak cooldown.")
    def check_risk(context: dg.OpExecutionContext, mode: str, signal_ids: list[int], database: dg.ResourceParam[DatabaseResource],
                   market_data: dg.ResourceParam[MarketDataResource], upbit: dg.ResourceParam[UpbitExchangeResource],
                   clock: dg.ResourceParam[Clock]) -> list[int]:
        return executor(context, mode, database, market_data, upbit, clock).apply_risk()

    @dg.op(config_schema=NO_CONFIG, description="The AI analyst reviews each entry; any failure is a REJECT.")
    def review_signals(context: dg.OpExecutionContext, mode: str, signal_ids: list[int], database: dg.ResourceParam[DatabaseResource],
                       market_data: dg.ResourceParam[MarketDataResource], upbit: dg.ResourceParam[UpbitExchangeResource],
                       analyst: dg.ResourceParam[AnalystResource], clock: dg.ResourceParam[Clock]) -> list[int]:
        return executor(context, mode, database, market_data, upbit, clock, analyst).review()

    @dg.op(pool=ORDER_POOL, config_schema=NO_CONFIG, description="Fill on paper at the next open; record and send each order once.")
    def execute_signals(context: dg.OpExecutionContext, mode: str, signal_ids: list[int], database: dg.ResourceParam[DatabaseResource],
                        market_data: dg.ResourceParam[MarketDataResource], upbit: dg.ResourceParam[UpbitExchangeResource],
                        clock: dg.ResourceParam[Clock]) -> list[int]:
        return executor(context, mode, database, market_data, upbit, clock).execute()

    @dg.op(pool=ORDER_POOL, config_schema=NO_CONFIG, description="Look up unanswered orders by identifier and poll live orders to a final state.")
    def reconcile_orders(context: dg.OpExecutionContext, mode: str, attempt_ids: list[int], database: dg.ResourceParam[DatabaseResource],
                         market_data: dg.ResourceParam[MarketDataResource], upbit: dg.ResourceParam[UpbitExchangeResource],
                         clock: dg.ResourceParam[Clock]) -> dg.Output[dict]:
        outcome = executor(context, mode, database, market_data, upbit, clock).reconcile()
        return dg.Output(outcome, metadata={"effective_mode": mode, "attempts_this_run": len(attempt_ids), **outcome,
                                            **trades_chart(database.engine(), market_data)})

    # In process: the steps run one after another anyway, and a step process each would cost a
    # process start (seconds) between a bar's close and its order decision.
    @dg.job(name="order_executor_job", tags=EXECUTOR_TAGS, executor_def=dg.in_process_executor,
            description="collect signals -> risk -> AI review -> execute -> reconcile, in shadow, test or live mode.")
    def order_executor_job():
        mode = resolve_trading_mode()
        signals = collect_signals(mode)
        confirmed = review_signals(mode, check_risk(mode, signals))
        reconcile_orders(mode, execute_signals(mode, confirmed))

    @dg.sensor(name="order_signal_sensor", job=order_executor_job, minimum_interval_seconds=scan_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Scans each new bar for entry and exit signals (from the stored scores, features and "
                           "bars), applies the risk limits, and starts order_executor_job (AI review, fill, "
                           "orders) once a signal's fill bar is stored or a live order is unsettled, unless an "
                           "executor run is already queued or running. Acts on live data only.")
    def order_signal_sensor(context: dg.SensorEvaluationContext, database: dg.ResourceParam[DatabaseResource],
                            market_data: dg.ResourceParam[MarketDataResource],
                            clock: dg.ResourceParam[Clock]) -> dg.SensorResult:
        engine = database.engine()
        now = clock.now()
        newest = {s: t for s in symbols if (t := latest_open_time(engine, market_data.series(s))) is not None}
        if not newest:
            return dg.SensorResult(skip_reason="no candles stored yet")
        # A bar older than an entry's time-to-live can no longer be traded on: the scan follows live data
        # (a replay of history passes `up_to` to the job instead).
        interval = market_data.series(symbols[0]).interval.delta
        live = [s for s, t in newest.items() if now - (t + interval) <= interval * exec_settings.entry_ttl_bars]
        if not live:
            latest = max(newest.values())
            return dg.SensorResult(skip_reason=f"no live data: the newest bar opened {latest:%Y-%m-%d %H:%M} UTC; "
                                               "turn on live_kline_sensor")
        # Signals and the risk limits are settled in the tick (database work only); the run reviews,
        # fills and sends orders, once the bar to fill at is stored.
        scan = Executor(engine=engine, series_list=[market_data.series(s) for s in live], settings=exec_settings,
                        mode="shadow", now=clock.now, log=context.log.info)
        pending = scan.collect_signals()
        scan.apply_risk()
        ready = scan.ready_to_carry_on()
        if not ready:
            waiting = f"{len(pending)} signal(s) wait for the bar after theirs" if pending else "no signal to carry on"
            return dg.SensorResult(skip_reason=waiting)
        # One at a time, and no pile-up behind it: the next run starts once this one ended, and
        # carries on everything still pending when it starts.
        running = runs_in_progress(context.instance, order_executor_job.name, limit=1)
        if running:
            return dg.SensorResult(skip_reason=f"{describe(running[0])}; the signals wait for the next run")
        # The key is the data and the work that started the run: a re-evaluated tick cannot start it
        # twice, and work left over starts one run per new bar, not one per tick.
        digest = hashlib.sha1(",".join(sorted(ready)).encode()).hexdigest()[:12]
        key = f"orders-{max(newest[s] for s in live):%Y%m%dT%H%M}-{digest}"
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key, tags={"coinpilot/ready": str(len(ready))})])

    return {"assets": [], "jobs": [order_executor_job], "schedules": [], "sensors": [order_signal_sensor]}

