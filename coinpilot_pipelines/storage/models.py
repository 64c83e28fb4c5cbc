"""Promotion events, the inference log and calibration reports."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, Double, Engine, Row, and_, bindparam, cast, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.storage.frames import as_floats, of_series, query_frame
from coinpilot_pipelines.storage.schema import (
    calibration_reports,
    model_inference_log,
    ohlcv_candles,
    promotion_events,
)


def _insert(engine: Engine):  # noqa: ANN202 - the dialect's Insert constructor
    return pg_insert if engine.dialect.name == "postgresql" else sqlite_insert


@contextmanager
def promotion_lock(engine: Engine, model_name: str) -> Iterator[Connection]:
    """One promotion decision of ``model_name`` at a time, across processes and machines.

    Held from reading the champion to recording the decision, so every challenger is compared
    with the champion of its moment: a PostgreSQL advisory lock for the transaction, on SQLite
    the database write lock (``BEGIN IMMEDIATE``; readers go on under WAL). The decision is
    recorded on the yielded connection and committed when the block ends without an error; an
    error rolls it back and releases the lock.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            digest = hashlib.sha256(f"coinpilot-promotion:{model_name}".encode()).digest()
            connection.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True))))
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection
        connection.commit()


def record_promotion(connection: Connection, **values: object) -> int:
    """One row per challenger version; recording the same decision again keeps the first."""
    for key in ("challenger_metrics", "champion_metrics"):
        if values.get(key) is not None and not isinstance(values[key], str):
            values[key] = json.dumps(values[key], sort_keys=True)
    statement = _insert(connection.engine)(promotion_events).values(**values).on_conflict_do_nothing(
        index_elements=["model_name", "challenger_version"]).returning(promotion_events.c.id)
    inserted = connection.execute(statement).scalar()
    if inserted is None:
        inserted = connection.execute(select(promotion_events.c.id).where(
            promotion_events.c.model_name == values["model_name"],
            promotion_events.c.challenger_version == values["challenger_version"])).scalar_one()
    return inserted


def latest_promotion(engine: Engine) -> dict | None:
    """The newest promotion decision of any model, with ``champion_after`` (the champion it left)."""
    query = select(promotion_events).order_by(promotion_events.c.id.desc()).limit(1)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        return None
    return {**row, "champion_after": row["challenger_version"] if row["promoted"] else row["champion_version"]}


def promotion_history(engine: Engine, model_name: str) -> pd.DataFrame:
    query = select(promotion_events).where(promotion_events.c.model_name == model_name).order_by(promotion_events.c.id)
    with engine.connect() as connection:
        return query_frame(connection, query)


def log_inference(engine: Engine, rows: list[dict]) -> int:
    """Insert scored bars; a bar already scored by the same model version is left as it was."""
    if not rows:
        return 0
    statement = _insert(engine)(model_inference_log).on_conflict_do_nothing(
        index_elements=["exchange", "symbol", "interval", "open_time", "model_name", "model_version"]
    ).returning(model_inference_log.c.id)
    with engine.begin() as connection:
        return len(connection.execute(statement, rows).all())


def scored_times(engine: Engine, series: SeriesKey, model_name: str, since: datetime) -> set[datetime]:
    """The bars from ``since`` on that the log holds a score of, by any version of the model."""
    query = select(model_inference_log.c.open_time).where(
        of_series(model_inference_log, series), model_inference_log.c.model_name == model_name,
        model_inference_log.c.open_time >= since)
    with engine.connect() as connection:
        return set(connection.execute(query).scalars())


def unrealized(engine: Engine, series: SeriesKey, since: datetime | None = None) -> pd.DataFrame:
    query = select(model_inference_log.c.id, model_inference_log.c.open_time, model_inference_log.c.horizon_bars).where(
        of_series(model_inference_log, series), model_inference_log.c.realized_at.is_(None))
    if since is not None:
        query = query.where(model_inference_log.c.open_time >= since)
    with engine.connect() as connection:
        return query_frame(connection, query)


def set_realized(engine: Engine, outcomes: list[dict]) -> int:
    """``outcomes``: ``id``, ``realized_label`` (None inside the dead band), ``realized_return``, ``realized_at``."""
    if not outcomes:
        return 0
    statement = update(model_inference_log).where(
        and_(model_inference_log.c.id == bindparam("outcome_id"), model_inference_log.c.realized_at.is_(None))
    ).values(realized_label=bindparam("outcome_label"), realized_return=bindparam("outcome_return"),
             realized_at=bindparam("outcome_at"))
    with engine.begin() as connection:  # one executemany: the first report realizes a day of scores at once
        connection.execute(statement, [
            {"outcome_id": o["id"], "outcome_label": o["realized_label"], "outcome_return": o["realized_return"],
             "outcome_at": o["realized_at"]} for o in outcomes])
    return len(outcomes)


def inference_log(engine: Engine, model_name: str, version: str | None = None, since: datetime | None = None) -> pd.DataFrame:
    query = select(model_inference_log).where(model_inference_log.c.model_name == model_name)
    if version is not None:
        query = query.where(model_inference_log.c.model_version == version)
    if since is not None:
        query = query.where(model_inference_log.c.open_time >= since)
    with engine.connect() as connection:
        return query_frame(connection, query.order_by(model_inference_log.c.open_time, model_inference_log.c.symbol))


def store_report(engine: Engine, **values: object) -> int:
    values["drift"] = json.dumps(values["drift"], sort_keys=True)
    with engine.begin() as connection:
        return connection.execute(calibration_reports.insert().values(**values).returning(calibration_reports.c.id)).scalar_one()


def reports_since(engine: Engine, after_id: int) -> list[Row]:
    """Calibration reports written after ``after_id``, oldest first: id, created_at, recommend_retrain."""
    query = (select(calibration_reports.c.id, calibration_reports.c.created_at, calibration_reports.c.recommend_retrain)
             .where(calibration_reports.c.id > after_id).order_by(calibration_reports.c.id).limit(100))
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def earlier_gap_flags(engine: Engine, model_name: str, version: str, limit: int) -> list[bool]:
    """For the latest reports of one model version (newest first): did live ECE exceed the gap?"""
    query = (select(calibration_reports.c.ece_gap_exceeded).where(calibration_reports.c.model_name == model_name,
                                                                  calibration_reports.c.model_version == version)
             .order_by(calibration_reports.c.id.desc()).limit(limit))
    with engine.connect() as connection:
        return [bool(flag) for flag in connection.execute(query).scalars()]


def scored_bars(engine: Engine, series: SeriesKey, start: datetime, end: datetime) -> pd.DataFrame:
    """``open_time``, ``probability``, ``close`` of each stored bar in ``[start, end)`` the log scored,
    by whichever model scored it last (the champion of the moment), ascending. One query: the
    signal scan reads this every tick."""
    log = model_inference_log
    last_score = (select(func.max(log.c.id).label("id"))
                  .where(of_series(log, series), log.c.open_time >= start, log.c.open_time < end)
                  .group_by(log.c.open_time).subquery())
    query = (select(log.c.open_time, log.c.probability, cast(ohlcv_candles.c.close, Double).label("close"))
             .join(last_score, last_score.c.id == log.c.id)
             .join(ohlcv_candles, and_(of_series(ohlcv_candles, series), ohlcv_candles.c.open_time == log.c.open_time))
             .order_by(log.c.open_time))
    with engine.connect() as connection:
        scored = query_frame(connection, query)
    scored["open_time"] = pd.to_datetime(scored["open_time"], utc=True)
    return as_floats(scored, ["probability", "close"])
