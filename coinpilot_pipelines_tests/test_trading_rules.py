"""Signals, paper fills and risk limits, from independent hand-worked expectations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd

from coinpilot_pipelines.trading.paper import entry_fill, exit_fill, realized_pnl
from coinpilot_pipelines.trading.risk import RiskLimits, RiskState, after_close, entry_refusal
from coinpilot_pipelines.trading.signals import ExitRules, first_exit, latest_mean_reversion_entry, latest_model_entry

UTC = timezone.utc
T0 = datetime(2024, 2, 5, tzinfo=UTC)
LIMITS = RiskLimits(Decimal("50"), Decimal("200"), 3, 3, timedelta(hours=24))
CLEAN = RiskState(T0, Decimal(0), 0, None)


def minutes(n: int) -> pd.Timestamp:
    return pd.Timestamp(T0 + timedelta(minutes=n))


def test_model_entry_is_the_newest_upward_crossing_of_the_threshold() -> None:
    scored = pd.DataFrame({"open_time": [minutes(i) for i in range(6)],
                           "probability": [0.4, 0.55, 0.6, 0.45, 0.52, 0.58], "close": [100.0] * 6})
    signal = latest_model_entry("BTCUSDT", scored, 0.5)
    assert signal.bar_open_time == minutes(4) and signal.probability == 0.52
    assert signal.key == "model:BTCUSDT:enter:20240205T0004Z"
    assert latest_model_entry("BTCUSDT", scored.assign(probability=0.3), 0.5) is None


def test_mean_reversion_needs_all_four_conditions() -> None:
    base = {"open_time": minutes(1), "rsi_14": 25.0, "ma_200": 0.98, "close": 100.0, "bb_lower": 100.5, "vol_ratio": 2.0}
    assert latest_mean_reversion_entry("XRPUSDT", pd.DataFrame([base])) is not None
    for broken in ({"rsi_14": 31.0}, {"ma_200": 1.01}, {"bb_lower": 99.0}, {"vol_ratio": 1.5}):
        assert latest_mean_reversion_entry("XRPUSDT", pd.DataFrame([{**base, **broken}])) is None, broken


def test_exits_take_profit_stop_loss_time_and_low_probability() -> None:
    rules = ExitRules(0.45, Decimal("0.01"), Decimal("0.005"), timedelta(hours=48))

    def exit_for(closes: list[float], probability: list[float] | None = None, step: timedelta = timedelta(minutes=1)):
        bars = pd.DataFrame({"open_time": [pd.Timestamp(T0 + step * i) for i in range(len(closes))], "close": closes})
        if probability is not None:
            bars["probability"] = probability
        return first_exit(9, "BTCUSDT", "model", T0, Decimal("100"), bars, rules)

    assert exit_for([100.2, 101.0]).reason == "take_profit: +1.0000%"
    assert exit_for([100.2, 99.5]).reason == "stop_loss: -0.5000%"
    assert exit_for([100.1, 100.2], step=timedelta(hours=48)).reason == "time_exit: held 2 days, 0:00:00"
    assert exit_for([100.1, 100.2], [0.6, 0.44]).reason == "low_probability: 0.440 < 0.45"
    assert exit_for([100.1, 100.2], [0.6, 0.5]) is None
    assert exit_for([100.2, 101.0]).key == "model:BTCUSDT:exit:trade-9"


def test_paper_fills_use_the_next_open_with_slippage_and_fees() -> None:
    entry = entry_fill(Decimal("200"), Decimal("100"), slippage=Decimal("0.001"), fee_rate=Decimal("0.0005"))
    assert entry.price == Decimal("200.200") and entry.quantity == Decimal("0.49950049")
    assert entry.fee == Decimal("0.049999999049")  # 200.2 x 0.49950049 x 0.0005, worked by hand
    out = exit_fill(Decimal("210"), entry.quantity, slippage=Decimal("0.001"), fee_rate=Decimal("0.0005"))
    assert out.price == Decimal("209.790") and out.fee == Decimal("0.05239510389855")
    # 9.59 x 0.49950049 - 0.049999999049 - 0.05239510389855, exactly: no float rounding anywhere
    assert realized_pnl(entry, out) == Decimal("4.68781459615245")


def test_risk_limits_refuse_entries_with_the_reason() -> None:
    assert entry_refusal(CLEAN, LIMITS, at=T0, open_positions=0, notional=Decimal("100")) is None
    assert "3 positions open" in entry_refusal(CLEAN, LIMITS, at=T0, open_positions=3, notional=Decimal("100"))
    assert "position size 250" in entry_refusal(CLEAN, LIMITS, at=T0, open_positions=0, notional=Decimal("250"))
    down = RiskState(T0, Decimal("-50"), 0, None)
    assert "daily loss limit" in entry_refusal(down, LIMITS, at=T0 + timedelta(hours=5), open_positions=0,
                                               notional=Decimal("100"))
    assert entry_refusal(down, LIMITS, at=T0 + timedelta(days=1), open_positions=0, notional=Decimal("100")) is None


def test_three_losses_in_a_row_start_a_24_hour_cooldown() -> None:
    state = CLEAN
    for i, pnl in enumerate(("-1", "-2", "5", "-1", "-1")):
        state = after_close(state, LIMITS, pnl=Decimal(pnl), at=T0 + timedelta(hours=i))
    assert (state.consecutive_losses, state.cooldown_until) == (2, None)
    closed_at = T0 + timedelta(hours=6)
    state = after_close(state, LIMITS, pnl=Decimal("-3"), at=closed_at)
    assert state.cooldown_until == closed_at + timedelta(hours=24) and state.consecutive_losses == 0
    assert state.daily_realized_pnl == Decimal("-3")  # -1 -2 +5 -1 -1 -3
    refused = entry_refusal(state, LIMITS, at=closed_at + timedelta(hours=23), open_positions=0, notional=Decimal("1"))
    assert refused.startswith("cooldown after 3 losing trades until")
    assert entry_refusal(state, LIMITS, at=closed_at + timedelta(hours=24), open_positions=0, notional=Decimal("1")) is None
    next_day = after_close(state, LIMITS, pnl=Decimal("2"), at=T0 + timedelta(days=1, hours=1))
    assert next_day.daily_realized_pnl == Decimal("2")
