"""The order executor's steps: collect signals -> risk -> AI review -> execute -> reconcile.

Every step reads and writes the database, so a step can be re-run, or run by two executors at
once, without repeating an order: a paper trade is unique by its entry signal, and an order
intent (identifier ``paper-{paper_trade_id}-{action}``) is recorded before any request and never
sent twice. After a timeout or a crash the order is looked up by its identifier.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.clients.anthropic_analyst import AnthropicAnalyst
from coinpilot_pipelines.clients.http import ExchangeError
from coinpilot_pipelines.clients.upbit.exchange import (
    OrderOutcomeUnknown,
    UpbitExchangeClient,
)
from coinpilot_pipelines.clock import SYSTEM_CLOCK
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.storage.candles import first_bar_after, latest_open_time
from coinpilot_pipelines.storage.features import read_closes, read_features
from coinpilot_pipelines.storage.models import latest_promotion, scored_bars
from coinpilot_pipelines.storage.trading import (
    PENDING,
    apply_fill,
    attempt_by_identifier,
    attempts,
    begin_attempt,
    close_trade,
    count_open_trades,
    decisions,
    get_attempt,
    get_trade,
    last_scanned_bar,
    open_trade,
    open_trades,
    pending_entry_exists,
    read_risk_state,
    record_accounts,
    record_decision,
    record_scan,
    record_snapshot,
    set_signal_status,
    signals_with_status,
    store_signals,
    update_attempt,
    update_risk_state,
)
from coinpilot_pipelines.trading.paper import Fill, entry_fill, exit_fill, realized_pnl
from coinpilot_pipelines.trading.review import review_proposal
from coinpilot_pipelines.trading.risk import (
    RiskLimits,
    after_close,
    entry_refusal,
    order_size_refusal,
)
from coinpilot_pipelines.trading.signals import (
    MEAN_REVERSION,
    MEAN_REVERSION_FEATURES,
    MODEL,
    ExitRules,
    Signal,
    first_exit,
    latest_mean_reversion_entry,
    latest_model_entry,
)

FINAL_STATES = ("done", "cancel")
STALE_SENDING = timedelta(minutes=1)  # an attempt still "sending" after this belongs to a dead run


def model_strategy_state(latest_decision: dict | None) -> str:
    """What the model strategy can do, and why: it enters only on bars a champion scored, and a
    model becomes champion only by beating the climatology baseline (`ml.promotion`)."""
    if latest_decision is None:
        return "idle: no model has been trained yet (materialize signal_model)"
    name, champion = latest_decision["model_name"], latest_decision["champion_after"]
    if champion is None:
        return (f"idle: {name} has no champion; the latest challenger, v{latest_decision['challenger_version']}, "
                f"was not promoted ({latest_decision['reason']})")
    return f"active: trades on the scores of {name} champion v{champion}"


@dataclass(frozen=True)
class ExecutorSettings:
    profile: str
    entry_threshold: float
    exit_rules: ExitRules
    limits: RiskLimits
    paper_notional: Decimal
    fee_rate: Decimal
    slippage: Decimal
    order_krw: Decimal
    max_order_krw: Decimal
    market_map: dict[str, str]
    signal_lookback_bars: int
    entry_ttl_bars: int  # an entry not filled within this many bars of its own bar expires
    poll_interval_s: float
    max_polls: int


@dataclass
class Executor:
    engine: Engine
    series_list: list[SeriesKey]
    settings: ExecutorSettings
    mode: str
    upbit: UpbitExchangeClient | None = None
    analyst: AnthropicAnalyst | None = None
    now: Callable[[], datetime] = SYSTEM_CLOCK.now
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = lambda _: None

    def __post_init__(self) -> None:
        if self.mode in ("test", "live") and self.upbit is None:
            raise ValueError(f"{self.mode} mode needs the Upbit exchange client")

    def model_strategy(self) -> str:
        return model_strategy_state(latest_promotion(self.engine))

    # -- 1. collect ---------------------------------------------------------------------------
    def collect_signals(self, up_to: datetime | None = None) -> list[int]:
        """Compute signals from the data stored up to ``up_to`` (default: the newest bar); the ids of
        every signal still to be carried to an end (new, approved, confirmed), after expiring stale entries.

        The bars scanned for the first time are recorded with the time of this scan: for a bar that
        gives no signal, that is its order decision.
        """
        for series in self.series_list:
            cutoff = up_to or latest_open_time(self.engine, series)
            if cutoff is None:
                continue
            signals = [*self._exits(series, cutoff), *self._entries(series, cutoff)]
            now = self.now()
            created = store_signals(self.engine, series, signals, now)
            record_scan(self.engine, series, self._unscanned_bars(series, cutoff), scanned_at=now, signals=len(created))
            if created:
                self.log(f"{series.symbol}: {len(created)} new signal(s)")
        self.expire_stale_entries()
        return signals_with_status(self.engine, PENDING)["id"].tolist()

    def _unscanned_bars(self, series: SeriesKey, cutoff: datetime) -> list[datetime]:
        last = last_scanned_bar(self.engine, series)
        first = cutoff - series.interval.delta * (self.settings.signal_lookback_bars - 1)
        if last is not None:
            first = max(first, last + series.interval.delta)
        return [bar.to_pydatetime() for bar in read_closes(self.engine, series, first, cutoff + series.interval.delta)
                ["open_time"]] if first <= cutoff else []

    def expire_stale_entries(self) -> list[int]:
        """An entry not filled within its time-to-live ends ``expired``: it never blocks its symbol.
        Exits never expire: a trade is closed at the first bar after its exit signal, however late."""
        expired = []
        for signal in signals_with_status(self.engine, PENDING).itertuples(index=False):
            series = self._series(signal.symbol)
            if signal.action == "enter" and self._entry_too_old(signal.bar_open_time, series) and set_signal_status(
                    self.engine, signal.id, "expired", f"not filled within {self.settings.entry_ttl_bars} bars of "
                    f"its bar (still {signal.status})", only_from=PENDING, at=self.now()):
                expired.append(signal.id)
                self.log(f"signal {signal.id} {signal.symbol} enter: expired while {signal.status}")
        return expired

    def _entry_too_old(self, bar_open_time: datetime, series: SeriesKey) -> bool:
        """Its time-to-live is over: the last bar it could be filled at has closed."""
        return self.now() >= bar_open_time + series.interval.delta * (self.settings.entry_ttl_bars + 1)

    def ready_to_carry_on(self) -> list[str]:
        """What an executor run can take to an end now, by name: the approved and confirmed signals whose
        fill bar is stored, and the live orders not yet settled. A signal met on the newest bar waits
        for the next bar, so that one run reviews and fills it."""
        ready = [f"signal-{signal.id}" for signal in signals_with_status(self.engine, ["approved", "confirmed"]).itertuples(index=False)
                 if first_bar_after(self.engine, self._series(signal.symbol), signal.bar_open_time) is not None]
        unsettled = attempts(self.engine, ["unknown", "sending", "accepted"])
        return ready + [f"order-{i}" for i in unsettled.loc[unsettled["mode"] == "live", "id"]]

    def _series(self, symbol: str) -> SeriesKey:
        return next(s for s in self.series_list if s.symbol == symbol)

    def _window(self, series: SeriesKey, cutoff: datetime) -> tuple[datetime, datetime]:
        return cutoff - series.interval.delta * self.settings.signal_lookback_bars, cutoff + series.interval.delta

    def _entries(self, series: SeriesKey, cutoff: datetime) -> list[Signal]:
        start, end = self._window(series, cutoff)
        found = []
        scored = scored_bars(self.engine, series, start, end)
        features = read_features(self.engine, [series], start, end, columns=MEAN_REVERSION_FEATURES)
        held = set(open_trades(self.engine, series.symbol)["strategy"])
        for strategy, signal in ((MODEL, latest_model_entry(series.symbol, scored, self.settings.entry_threshold)),
                                 (MEAN_REVERSION, latest_mean_reversion_entry(series.symbol, features))):
            if signal is None or self._entry_too_old(signal.bar_open_time, series):
                continue  # none, or met while a position was held and too old to be filled now
            if strategy in held or pending_entry_exists(self.engine, series.symbol, strategy):
                continue  # one position (or pending entry) per symbol and strategy
            found.append(signal)
        return found

    def _exits(self, series: SeriesKey, cutoff: datetime) -> list[Signal]:
        found = []
        for trade in open_trades(self.engine, series.symbol).itertuples(index=False):
            bars = read_closes(self.engine, series, trade.entry_time, cutoff + series.interval.delta)
            if trade.strategy == MODEL:
                scored = scored_bars(self.engine, series, trade.entry_time, cutoff + series.interval.delta)
                bars = bars.merge(scored[["open_time", "probability"]], on="open_time", how="left")
            signal = first_exit(trade.id, series.symbol, trade.strategy, trade.entry_time, trade.entry_price, bars,
                                self.settings.exit_rules)
            if signal is not None:
                found.append(signal)
        return found

    # -- 2. risk ------------------------------------------------------------------------------
    def apply_risk(self) -> list[int]:
        """Every new signal: approved, or rejected with the limit it breaks."""
        approved = []
        for signal in signals_with_status(self.engine, ["new"]).itertuples(index=False):
            refusal = None
            if signal.action == "enter":
                state = read_risk_state(self.engine, self.settings.profile, signal.bar_open_time)
                refusal = entry_refusal(state, self.settings.limits, at=signal.bar_open_time,
                                        open_positions=count_open_trades(self.engine),
                                        notional=self.settings.paper_notional)
            if refusal:
                set_signal_status(self.engine, signal.id, "rejected", f"risk: {refusal}", only_from=["new"],
                                  at=self.now())
                self.log(f"signal {signal.id} {signal.symbol} {signal.action}: rejected by risk: {refusal}")
            elif set_signal_status(self.engine, signal.id, "approved", None, only_from=["new"]):
                approved.append(signal.id)
        return approved

    # -- 3. AI review ---------------------------------------------------------------------------
    def review(self) -> list[int]:
        """Every approved signal: entries need the analyst's confirmation; exits go ahead (they only
        reduce risk)."""
        confirmed = []
        for signal in signals_with_status(self.engine, ["approved"]).itertuples(index=False):
            if signal.action == "exit":
                if set_signal_status(self.engine, signal.id, "confirmed", "exits are not reviewed", only_from=["approved"]):
                    confirmed.append(signal.id)
                continue
            proposal = self._proposal(signal)
            verdict = review_proposal(self.analyst, proposal)
            record_decision(self.engine, signal_id=signal.id, created_at=self.now(), signal=proposal,
                            decision=verdict.decision, confidence=verdict.confidence, reasoning=verdict.reasoning,
                            model=verdict.model, latency_ms=verdict.latency_ms, error=verdict.error)
            if verdict.lets_through(self.mode):
                if set_signal_status(self.engine, signal.id, "confirmed", f"analyst: {verdict.decision}",
                                     only_from=["approved"]):
                    confirmed.append(signal.id)
            else:
                why = verdict.error or verdict.reasoning or verdict.decision
                if verdict.decision == "SKIPPED":
                    why = f"no analyst review, which only shadow mode accepts ({self.mode} mode)"
                set_signal_status(self.engine, signal.id, "rejected", f"analyst: {why}", only_from=["approved"],
                                  at=self.now())
            self.log(f"signal {signal.id} {signal.symbol} enter: analyst {verdict.decision}"
                     f"{f' ({verdict.confidence})' if verdict.confidence is not None else ''}")
        return confirmed

    def _proposal(self, signal) -> dict:  # noqa: ANN001 - a signal row
        return {"symbol": signal.symbol, "strategy": signal.strategy, "action": "enter long",
                "bar_open_time": signal.bar_open_time.isoformat(), "close": str(signal.close),
                "reason": signal.reason, "probability": signal.probability, "context": json.loads(signal.context),
                "position_notional": str(self.settings.paper_notional)}

    # -- 4. execute -----------------------------------------------------------------------------
    def execute(self) -> list[int]:
        """Fill every confirmed signal on paper at the open of the first bar after its own, and send
        its order. A signal whose fill bar is not stored yet waits for a later run (an entry no longer
        than its time-to-live)."""
        attempt_ids = []
        for signal in signals_with_status(self.engine, ["confirmed"]).itertuples(index=False):
            series = self._series(signal.symbol)
            fill_bar = first_bar_after(self.engine, series, signal.bar_open_time)
            if fill_bar is None:
                continue  # not there yet: the next run fills it
            fill_time, opened = fill_bar
            if signal.action == "enter":
                fill = entry_fill(opened, self.settings.paper_notional, slippage=self.settings.slippage,
                                  fee_rate=self.settings.fee_rate)
                trade_id = open_trade(self.engine, signal, entry_time=fill_time, price=fill.price,
                                      quantity=fill.quantity, fee=fill.fee)
                attempt_id = self._send(signal, trade_id, "buy")
            else:
                trade = get_trade(self.engine, signal.paper_trade_id)
                fill = exit_fill(opened, trade.quantity, slippage=self.settings.slippage, fee_rate=self.settings.fee_rate)
                self._close(signal, trade, fill, fill_time)
                attempt_id = self._send(signal, trade.id, "sell")
            set_signal_status(self.engine, signal.id, "executed", None, only_from=["confirmed"], at=self.now())
            if attempt_id is not None:
                attempt_ids.append(attempt_id)
        return attempt_ids

    def _close(self, signal, trade, fill, at: datetime) -> None:  # noqa: ANN001 - rows and a Fill
        def pnl_of(row) -> Decimal:  # noqa: ANN001 - a paper trade row
            return realized_pnl(Fill(row.entry_price, row.quantity, row.entry_fee), fill)

        close_trade(
            self.engine, trade.id, signal.id, exit_time=at, price=fill.price, fee=fill.fee,
            reason=signal.reason.split(":", 1)[0], pnl_of=pnl_of,
            on_closed=lambda connection, pnl: update_risk_state(
                connection, self.settings.profile, at, lambda state: after_close(state, self.settings.limits, pnl=pnl, at=at)),
        )

    def _market(self, symbol: str) -> str:
        if symbol in self.settings.market_map:
            return self.settings.market_map[symbol]
        if "-" in symbol:
            return symbol
        for quote in ("USDT", "USDC", "BUSD", "BTC", "ETH", "KRW"):
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return f"KRW-{symbol[: -len(quote)]}"
        return f"KRW-{symbol}"

    def _send(self, signal, trade_id: int, action: str) -> int | None:  # noqa: ANN001 - a signal row
        identifier = f"paper-{trade_id}-{action}"
        body = {"market": self._market(signal.symbol), "identifier": identifier}
        if action == "buy":
            body.update(side="bid", ord_type="price", price=str(self.settings.order_krw))
        else:
            volume = self._sell_volume(trade_id)
            if volume is None:
                self.log(f"{identifier}: nothing was bought live, so nothing is sold")
                return None
            body.update(side="ask", ord_type="market", volume=str(volume))
        refusal = self._size_refusal(body, trade_id)  # in shadow too: it logs what live would send
        attempt, new = begin_attempt(
            self.engine, ts=self.now(), symbol=signal.symbol, action=action, mode=self.mode, side=body["side"],
            ord_type=body["ord_type"], price=Decimal(body["price"]) if "price" in body else None,
            volume=Decimal(body["volume"]) if "volume" in body else None, paper_trade_id=trade_id,
            identifier=identifier, request_json=json.dumps(body, sort_keys=True),
            status="refused" if refusal else "sending", error_msg=refusal)
        if not new:
            self.log(f"{identifier}: already recorded ({attempt.status}); not sent again")
            return attempt.id
        if refusal:
            self.log(f"{identifier}: not sent: {refusal}")
            return attempt.id
        if self.mode == "shadow":
            update_attempt(self.engine, attempt.id, status="logged")
            return attempt.id
        try:
            response = self.upbit.create_order(body, test=self.mode == "test")
        except OrderOutcomeUnknown as exc:
            update_attempt(self.engine, attempt.id, status="unknown", error_msg=str(exc))
            self._look_up(get_attempt(self.engine, attempt.id))
            return attempt.id
        except ExchangeError as exc:
            update_attempt(self.engine, attempt.id, status="error", error_msg=str(exc), http_status=exc.status)
            raise
        status = ("test_ok" if self.mode == "test" else "accepted") if response.accepted else "error"
        update_attempt(self.engine, attempt.id, status=status, http_status=response.status,
                       response_json=json.dumps(response.payload, sort_keys=True), latency_ms=response.latency_ms,
                       remaining_req=response.remaining_req, uuid=response.payload.get("uuid") if response.accepted else None,
                       error_msg=None if response.accepted else json.dumps(response.payload)[:2000])
        return attempt.id

    def _size_refusal(self, body: dict, trade_id: int) -> str | None:
        """The size limits every order that reaches the exchange must pass, in its own currency."""
        if body["side"] == "bid":
            return order_size_refusal("bid", krw_total=Decimal(body["price"]), volume=None, held_volume=None,
                                      max_order_krw=self.settings.max_order_krw)
        volume = Decimal(body["volume"])
        bought = attempt_by_identifier(self.engine, f"paper-{trade_id}-buy")
        held = bought.executed_volume if self.mode == "live" and bought is not None else None
        krw_total = volume * bought.avg_price if held is not None and bought.avg_price else None
        return order_size_refusal("ask", krw_total=krw_total, volume=volume, held_volume=held,
                                  max_order_krw=self.settings.max_order_krw)

    def _sell_volume(self, trade_id: int) -> Decimal | None:
        if self.mode != "live":
            return get_trade(self.engine, trade_id).quantity
        bought = attempt_by_identifier(self.engine, f"paper-{trade_id}-buy")
        return bought.executed_volume if bought is not None and bought.executed_volume else None

    # -- 5. reconcile -----------------------------------------------------------------------------
    def reconcile(self) -> dict[str, int]:
        """Settle what is not final: look up unanswered orders by identifier, poll accepted ones."""
        outcome = {"looked_up": 0, "polled": 0, "done": 0}
        if self.mode in ("test", "live"):
            record_accounts(self.engine, self.upbit.accounts(), self.now())
        pending = attempts(self.engine, ["unknown", "sending", "accepted"])
        for attempt in pending.itertuples(index=False):
            if attempt.mode != "live" or self.mode != "live":
                continue  # only live orders exist at the exchange; others settle where they are
            if attempt.status == "sending" and self.now() - attempt.ts < STALE_SENDING:
                continue  # another run may be sending it right now
            if attempt.status in ("unknown", "sending"):
                outcome["looked_up"] += 1
                if not self._look_up(attempt):
                    continue
            outcome["polled"] += 1
            outcome["done"] += self._poll(get_attempt(self.engine, attempt.id))
        return outcome

    def _look_up(self, attempt) -> bool:  # noqa: ANN001 - an attempt row
        found = self.upbit.order(identifier=attempt.identifier)
        if found is None:
            update_attempt(self.engine, attempt.id, status="error",
                           error_msg=f"{attempt.error_msg or ''} not found at the exchange by identifier: never "
                                     "placed; not sent again (identifiers are single-use)".strip())
            return False
        update_attempt(self.engine, attempt.id, status="accepted", uuid=found.get("uuid"),
                       response_json=json.dumps(found, sort_keys=True))
        self.log(f"{attempt.identifier}: found at the exchange after an unanswered request ({found.get('state')})")
        return True

    def _poll(self, attempt) -> int:  # noqa: ANN001 - an attempt row
        for poll in range(self.settings.max_polls):
            order = self.upbit.order(uuid_=attempt.uuid)
            now = self.now()
            record_snapshot(self.engine, attempt.id, order, now)
            if order.get("state") in FINAL_STATES:
                self._settle(attempt, order, now)
                return 1
            if poll + 1 < self.settings.max_polls:
                self.sleep(self.settings.poll_interval_s)
        update_attempt(self.engine, attempt.id, retry_count=attempt.retry_count + 1)
        return 0

    def _settle(self, attempt, order: dict, now: datetime) -> None:  # noqa: ANN001 - an attempt row
        executed = Decimal(str(order.get("executed_volume") or "0"))
        avg_price = Decimal(str(order["avg_price"])) if order.get("avg_price") else None
        update_attempt(self.engine, attempt.id, status="done" if order["state"] == "done" else "cancelled",
                       final_state=order["state"], executed_volume=executed,
                       paid_fee=Decimal(str(order.get("paid_fee") or "0")), avg_price=avg_price)
        if executed and avg_price is not None:
            market = json.loads(attempt.request_json)["market"]
            apply_fill(self.engine, "upbit", market, side=attempt.side, volume=executed, price=avg_price, now=now)


def decisions_table(engine: Engine) -> pd.DataFrame:
    """The signals this executor has seen, with what became of each (for summaries)."""
    signals = signals_with_status(engine, ["new", "approved", "confirmed", "rejected", "executed", "expired"])
    reviews = decisions(engine)
    if not reviews.empty:
        latest = reviews.sort_values("id").groupby("signal_id").tail(1)[["signal_id", "decision", "confidence"]]
        signals = signals.merge(latest, left_on="id", right_on="signal_id", how="left")
    return signals
