"""The exchange pause shared by every run: one row per exchange, only ever moved later."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from coinpilot_pipelines.clock import SYSTEM_CLOCK
from coinpilot_pipelines.storage.schema import exchange_backoff

log = logging.getLogger(__name__)


class DatabasePause:
    """`clients.http.SharedPause` backed by the application database.

    Coordination is best effort: while the database is unreachable each run still honours the
    pauses it saw itself, and fetching goes on.
    """

    def __init__(self, engine: Engine, exchange: str) -> None:
        self._engine = engine
        self._exchange = exchange

    def until(self) -> float:
        try:
            with self._engine.connect() as connection:
                paused = connection.execute(select(exchange_backoff.c.paused_until).where(
                    exchange_backoff.c.exchange == self._exchange)).scalar()
        except OperationalError as exc:
            log.debug("shared pause unreadable (%s); using this run's own", exc.__class__.__name__)
            return 0.0
        return paused.timestamp() if paused is not None else 0.0

    def extend(self, until: float, reason: str) -> None:
        moment = datetime.fromtimestamp(until, tz=timezone.utc)
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(exchange_backoff).values(
            exchange=self._exchange, paused_until=moment, reason=reason[:500], updated_at=SYSTEM_CLOCK.now())
        statement = statement.on_conflict_do_update(
            index_elements=["exchange"],
            set_={"paused_until": func.max(exchange_backoff.c.paused_until, statement.excluded.paused_until)
                  if self._engine.dialect.name == "sqlite"
                  else func.greatest(exchange_backoff.c.paused_until, statement.excluded.paused_until),
                  "reason": statement.excluded.reason, "updated_at": statement.excluded.updated_at},
        )
        try:
            with self._engine.begin() as connection:
                if self._engine.dialect.name == "postgresql":
                    # Other runs see the row at commit; waiting for the WAL flush behind their bulk
                    # writes would only delay the pause they need now, and a lost pause is harmless.
                    connection.execute(text("SET LOCAL synchronous_commit TO OFF"))
                connection.execute(statement)
        except OperationalError as exc:
            log.warning("could not share a pause until %s with other runs: %s", moment.isoformat(), exc.__class__.__name__)
