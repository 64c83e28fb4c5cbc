"""Small key/value facts decided outside this database, recorded where they are decided.

The effective trade mode is a Dagster run tag and the champion is an MLflow alias; the metrics
exporter reads only this database, so the executor and the promotion step write them here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from coinpilot_pipelines.storage.schema import runtime_state

TRADE_MODE_KEY = "trading/effective_mode"


def champion_key(model_name: str) -> str:
    return f"ml/champion_version/{model_name}"


@dataclass(frozen=True)
class RuntimeValue:
    value: str
    updated_at: datetime
    dagster_run_id: str | None


def set_runtime_value(connection: Connection, key: str, value: str, *, now: datetime,
                      dagster_run_id: str | None = None) -> None:
    """Record ``value`` under ``key`` in the caller's transaction (the last writer wins)."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    values = {"value": value, "updated_at": now, "dagster_run_id": dagster_run_id}
    connection.execute(insert(runtime_state).values(key=key, **values)
                       .on_conflict_do_update(index_elements=["key"], set_=values))


def record_runtime_value(engine: Engine, key: str, value: str, *, now: datetime,
                         dagster_run_id: str | None = None) -> None:
    with engine.begin() as connection:
        set_runtime_value(connection, key, value, now=now, dagster_run_id=dagster_run_id)


def runtime_values(engine: Engine, prefix: str = "") -> dict[str, RuntimeValue]:
    """Every recorded value whose key starts with ``prefix``."""
    query = select(runtime_state).where(runtime_state.c.key.startswith(prefix, autoescape=True))
    with engine.connect() as connection:
        return {row.key: RuntimeValue(row.value, row.updated_at, row.dagster_run_id)
                for row in connection.execute(query)}
