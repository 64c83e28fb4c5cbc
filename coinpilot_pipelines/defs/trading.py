"""The guarded order executor in Dagster: an op job and the sensor that starts it."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
from sqlalchemy import func, select

from coinpilot_pipelines.clients.anthropic_analyst import AnthropicAnalyst
from coinpilot_pipelines.clients.http import RetryPolicy
from coinpilot_pipelines.clients.upbit.exchange import UpbitExchangeClient
from coinpilot_pipelines.defs.resources import DatabaseResource, MarketDataResource
from coinpilot_pipelines.settings import TradingSettings
from coinpilot_pipelines.storage.candles import latest_open_time
from coinpilot_pipelines.storage.schema import model_inference_log
from coinpilot_pipelines.trading.executor import Executor, ExecutorSettings
from coinpilot_pipelines.trading.guards import GuardInputs, resolve_mode
from coinpilot_pipelines.trading.risk import RiskLimits
from coinpilot_pipelines.trading.signals import ExitRules

ORDER_POOL = "orders"
# One executor at a time (a tag concurrency limit in dagster.yaml), and never re-run whole by
# Dagster's run retries: a retry could only repeat what the identifiers already settle.
EXECUTOR_TAGS = {"coinpilot/exclusive": "order-executor", "dagster/max_retries": "0"}


class UpbitExchangeResource(dg.ConfigurableResource):
    """Upbit's exchange API. The keys come from UPBIT_ACCESS_KEY / UPBIT_SECRET_KEY at run time."""

    base_url: str = "https://api.upbit.com"
    access_key: str = ""
    secret_key: str = ""
    timeout_s: float = 10.0

    def keys_set(self) -> bool:
        return bool(self.access_key and self.secret_key)

    def client(self) -> UpbitExchangeClient | None:
        if not self.keys_set():
            return None
        return UpbitExchangeClient(self.base_url, self.access_key, self.secret_key,
                                   policy=RetryPolicy(max_attempts=4, base_delay_s=0.5, timeout_s=self.timeout_s))


class TradingGuardsResource(dg.ConfigurableResource):
    """The live-trading guards, as the environment gives them when a run starts."""

    live_trading_enabled: str = "false"
    trade_mode: str = "shadow"
    guard_phrase: str = ""
    paper_policy_profile: str = "test"


class AnalystResource(dg.ConfigurableResource):
    """The AI analyst; without ANTHROPIC_API_KEY reviews are recorded as skipped."""

    api_key: str = ""
    model: str = "claude-haiku-4-5"
    timeout_s: float = 20.0

    def analyst(self) -> AnthropicAnalyst | None:
        return AnthropicAnalyst(self.api_key, self.model, timeout_s=self.timeout_s) if self.api_key else None


class ModeConfig(dg.Config):
    mode: str | None = None  # ask for a safer mode than the guards allow (never a less safe one)


class SignalWindowConfig(dg.Config):
    up_to: str | None = None  # ISO time: signals from the data stored up to here (default: the newest bar)


def executor_settings(settings: TradingSettings, entry_threshold: float) -> ExecutorSettings:
    return ExecutorSettings(
        profile="default",
        entry_threshold=entry_threshold,
        exit_rules=ExitRules(settings.exit_probability, settings.take_profit, settings.stop_loss,
                             timedelta(hours=settings.max_holding_hours)),
        limits=RiskLimits(settings.daily_loss_limit, settings.max_position_notional, settings.max_open_positions,
                          settings.losing_streak, timedelta(hours=settings.cooldown_hours)),
        paper_notional=settings.paper_notional, fee_rate=settings.fee_rate, slippage=settings.slippage,
        order_krw=settings.order_krw, market_map=dict(settings.market_map), signal_lookback_bars=60,
        poll_interval_s=settings.order_poll_interval_s, max_polls=settings.order_max_polls,
    )


def build_trading_definitions(settings: TradingSettings, entry_threshold: float, symbols: tuple[str, ...]) -> dict[str, list]:
    def executor(context: dg.OpExecutionContext, mode: str, database: DatabaseResource,
                 market_data: MarketDataResource, upbit: UpbitExchangeResource,
                 analyst: AnalystResource | None = None) -> Executor:
        return Executor(
            engine=database.engine(), series_list=[market_data.series(s) for s in symbols],
            settings=executor_settings(settings, entry_threshold), mode=mode,
            upbit=upbit.client() if mode in ("test", "live") else None,
            analyst=analyst.analyst() if analyst is not None else None,
            now=lambda: datetime.now(timezone.utc), log=context.log.info,
        )

    @dg.op(description="Decide the execution mode from the guards (and a safer mode asked for).")
    def resolve_trading_mode(context: dg.OpExecutionContext, config: ModeConfig,
                             guards: TradingGuardsResource, upbit: UpbitExchangeResource) -> dg.Output[str]:
        decision = resolve_mode(GuardInputs(guards.live_trading_enabled, guards.trade_mode, guards.guard_phrase,
                                            guards.paper_policy_profile, bool(upbit.access_key), bool(upbit.secret_key)),
                                config.mode)
        context.log.info(f"effective mode {decision.describe()}")
        context.instance.add_run_tags(context.run_id, {"coinpilot/effective_mode": decision.mode})
        return dg.Output(decision.mode, metadata={"effective_mode": decision.mode,
                                                   "why": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons))})

    @dg.op(description="Compute entry and exit signals from the stored inference log, features and bars.")
    def collect_signals(context: dg.OpExecutionContext, config: SignalWindowConfig, mode: str,
                        database: DatabaseResource, market_data: MarketDataResource,
                        upbit: UpbitExchangeResource) -> dg.Output[list[int]]:
        up_to = datetime.fromisoformat(config.up_to) if config.up_to else None
        if up_to is not None and up_to.tzinfo is None:
            raise ValueError(f"up_to {config.up_to!r} needs a UTC offset")
        runner = executor(context, mode, database, market_data, upbit)
        signal_ids = runner.collect_signals(up_to)
        return dg.Output(signal_ids, metadata={"model_strategy": runner.model_strategy()})

    @dg.op(description="Risk limits: daily loss, position size, open positions, losing-streak cooldown.")
    def check_risk(context: dg.OpExecutionContext, mode: str, signal_ids: list[int], database: DatabaseResource,
                   market_data: MarketDataResource, upbit: UpbitExchangeResource) -> list[int]:
        return executor(context, mode, database, market_data, upbit).apply_risk(signal_ids)

    @dg.op(description="The AI analyst reviews each entry; any failure is a REJECT.")
    def review_signals(context: dg.OpExecutionContext, mode: str, signal_ids: list[int], database: DatabaseResource,
                       market_data: MarketDataResource, upbit: UpbitExchangeResource,
                       analyst: AnalystResource) -> list[int]:
        return executor(context, mode, database, market_data, upbit, analyst).review(signal_ids)

    @dg.op(pool=ORDER_POOL, description="Fill on paper at the next open; record and send each order once.")
    def execute_signals(context: dg.OpExecutionContext, mode: str, signal_ids: list[int], database: DatabaseResource,
                        market_data: MarketDataResource, upbit: UpbitExchangeResource) -> list[int]:
        return executor(context, mode, database, market_data, upbit).execute(signal_ids)

    @dg.op(pool=ORDER_POOL, description="Look up unanswered orders by identifier and poll live orders to a final state.")
    def reconcile_orders(context: dg.OpExecutionContext, mode: str, attempt_ids: list[int], database: DatabaseResource,
                         market_data: MarketDataResource, upbit: UpbitExchangeResource) -> dg.Output[dict]:
        outcome = executor(context, mode, database, market_data, upbit).reconcile()
        return dg.Output(outcome, metadata={"effective_mode": mode, "attempts_this_run": len(attempt_ids), **outcome})

    @dg.job(name="order_executor_job", tags=EXECUTOR_TAGS,
            description="collect signals -> risk -> AI review -> execute -> reconcile, in shadow, test or live mode.")
    def order_executor_job():
        mode = resolve_trading_mode()
        signals = collect_signals(mode)
        confirmed = review_signals(mode, check_risk(mode, signals))
        reconcile_orders(mode, execute_signals(mode, confirmed))

    @dg.sensor(name="order_signal_sensor", job=order_executor_job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Starts order_executor_job when new bars or new model scores arrive.")
    def order_signal_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource,
                            market_data: MarketDataResource) -> dg.SensorResult:
        engine = database.engine()
        newest = [t for t in (latest_open_time(engine, market_data.series(s)) for s in symbols) if t is not None]
        with engine.connect() as connection:
            last_scored = connection.execute(select(func.max(model_inference_log.c.id))).scalar() or 0
        if not newest:
            return dg.SensorResult(skip_reason="no candles stored yet")
        up_to = max(newest)
        marker = {"up_to": up_to.isoformat(), "last_scored": last_scored}
        if context.cursor and json.loads(context.cursor) == marker:
            return dg.SensorResult(skip_reason="no new bars or scores since the last run")
        # The key is the data the run will see: a re-evaluated tick cannot start it twice.
        key = f"orders-{up_to:%Y%m%dT%H%M}-{last_scored}"
        return dg.SensorResult(run_requests=[dg.RunRequest(
            run_key=key, run_config={"ops": {"collect_signals": {"config": {"up_to": up_to.isoformat()}}}})],
            cursor=json.dumps(marker))

    return {"assets": [], "jobs": [order_executor_job], "schedules": [], "sensors": [order_signal_sensor]}

