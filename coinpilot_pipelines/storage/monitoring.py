"""Read-only queries for the alert sensors and the metrics exporter: small aggregates, never rows in bulk.

Nothing here writes (the exporter may run on a read-only role), and every query is an aggregate or
a handful of rows, so a scrape stays cheap however long the history grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine, func, select

from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.storage.frames import of_series
from coinpilot_pipelines.storage.gap_segments import ACTIVE_STATES
from coinpilot_pipelines.storage.schema import (
    calibration_reports,
    gap_segments,
    live_positions,
    model_inference_log,
    news_sources,
    paper_trades,
    promotion_events,
    risk_state,
    upbit_order_attempts,
)
from coinpilot_pipelines.trading.risk import RiskState


def risk_states(engine: Engine) -> dict[str, RiskState]:
    """The risk state per profile, as last written (a plain read: no row is created or locked)."""
    with engine.connect() as connection:
        rows = connection.execute(select(risk_state)).all()
    return {row.profile: RiskState(row.trading_day, row.daily_realized_pnl, row.consecutive_losses, row.cooldown_until)
            for row in rows}


@dataclass(frozen=True)
class Promotion:
    id: int
    model_name: str
    version: str
    reason: str
    dagster_run_id: str | None


def promotions_since(engine: Engine, after_id: int | None, *, limit: int = 100) -> list[Promotion]:
    """Decisions that promoted a challenger, oldest first, after ``after_id``; with None, only the newest."""
    query = select(promotion_events).where(promotion_events.c.promoted.is_(True))
    if after_id is None:
        query = query.order_by(promotion_events.c.id.desc()).limit(1)
    else:
        query = query.where(promotion_events.c.id > after_id).order_by(promotion_events.c.id).limit(limit)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return sorted((Promotion(r.id, r.model_name, r.challenger_version, r.reason, r.dagster_run_id) for r in rows),
                  key=lambda p: p.id)


@dataclass(frozen=True)
class SegmentCounts:
    open_segments: int  # open or being repaired
    remaining_bars: int  # bars still missing in them
    unrecoverable: int


def segment_counts(engine: Engine, series: SeriesKey) -> SegmentCounts:
    active = gap_segments.c.state.in_(ACTIVE_STATES)
    query = select(
        func.count().filter(active), func.coalesce(func.sum(gap_segments.c.remaining_bars).filter(active), 0),
        func.count().filter(gap_segments.c.state == "unrecoverable"),
    ).where(of_series(gap_segments, series))
    with engine.connect() as connection:
        open_segments, remaining, unrecoverable = connection.execute(query).one()
    return SegmentCounts(int(open_segments), int(remaining), int(unrecoverable))


def recovery_seconds(engine: Engine, series: SeriesKey, since: datetime) -> list[float]:
    """Detection to recovery, in seconds, of the segments recovered since ``since``."""
    query = select(gap_segments.c.detected_at, gap_segments.c.recovered_at).where(
        of_series(gap_segments, series), gap_segments.c.state == "recovered",
        gap_segments.c.recovered_at >= since)
    with engine.connect() as connection:
        return [(recovered - detected).total_seconds() for detected, recovered in connection.execute(query)]


def latest_scored_open_time(engine: Engine, series: SeriesKey) -> datetime | None:
    """The newest bar of ``series`` any model has scored."""
    query = select(func.max(model_inference_log.c.open_time)).where(
        of_series(model_inference_log, series))
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


@dataclass(frozen=True)
class CalibrationSnapshot:
    model_name: str
    model_version: str
    production_ece: float
    live_ece: float | None
    ece_gap: float | None
    recommend_retrain: bool
    created_at: datetime


def latest_calibration(engine: Engine) -> CalibrationSnapshot | None:
    query = select(calibration_reports).order_by(calibration_reports.c.id.desc()).limit(1)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    return CalibrationSnapshot(row.model_name, row.model_version, row.production_ece, row.live_ece, row.ece_gap,
                               row.recommend_retrain, row.created_at)


def news_source_names(engine: Engine) -> list[str]:
    """Every source ever polled (the exporter does not read the feed configuration: URLs may carry tokens)."""
    with engine.connect() as connection:
        return sorted(connection.execute(select(news_sources.c.source)).scalars())


def open_paper_trades(engine: Engine) -> dict[str, int]:
    query = select(paper_trades.c.symbol, func.count()).where(paper_trades.c.status == "open").group_by(
        paper_trades.c.symbol)
    with engine.connect() as connection:
        return {symbol: int(count) for symbol, count in connection.execute(query)}


def open_live_positions(engine: Engine) -> int:
    query = select(func.count()).select_from(live_positions).where(live_positions.c.quantity > Decimal(0))
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def order_attempt_counts(engine: Engine) -> list[tuple[str, str, int]]:
    """(mode, status, attempts) for every combination that has attempts."""
    query = (select(upbit_order_attempts.c.mode, upbit_order_attempts.c.status, func.count())
             .group_by(upbit_order_attempts.c.mode, upbit_order_attempts.c.status))
    with engine.connect() as connection:
        return [(mode, status, int(count)) for mode, status, count in connection.execute(query)]

