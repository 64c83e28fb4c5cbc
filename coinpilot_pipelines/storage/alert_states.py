"""The state each alert was last sent for, per (kind, subject): what makes an alert a change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from coinpilot_pipelines.storage.schema import alert_states

CAS_ATTEMPTS = 3


@dataclass(frozen=True)
class Change:
    previous: str | None  # None: the first time this (kind, subject) was seen
    state: str


def record_state(engine: Engine, kind: str, subject: str, state: str, now: datetime) -> Change | None:
    """Store ``state`` for (kind, subject); the change, or None when it was already the state.

    Atomic per key without holding a lock across statements: the row is inserted once, and
    replaced only if it still holds the state that was read (compare and set), so of two
    evaluations reporting the same change at once exactly one sees it, on PostgreSQL and SQLite.
    """
    key = (alert_states.c.kind == kind) & (alert_states.c.subject == subject)
    with engine.begin() as connection:
        insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        created = connection.execute(insert(alert_states).values(kind=kind, subject=subject, state=state,
                                                                 changed_at=now)
                                     .on_conflict_do_nothing(index_elements=["kind", "subject"])
                                     .returning(alert_states.c.kind)).scalar()
    if created is not None:
        return Change(None, state)
    for _ in range(CAS_ATTEMPTS):
        with engine.connect() as connection:
            previous = connection.execute(select(alert_states.c.state).where(key)).scalar_one()
        if previous == state:
            return None
        with engine.begin() as connection:
            replaced = connection.execute(update(alert_states).where(key, alert_states.c.state == previous)
                                          .values(state=state, changed_at=now)).rowcount
        if replaced:
            return Change(previous, state)
    return None  # others kept changing it; the last of them reported the state they left


def subjects_not_in_state(engine: Engine, kind: str, state: str) -> list[str]:
    """The subjects of ``kind`` whose last state is anything but ``state`` (e.g. the failing ones)."""
    query = select(alert_states.c.subject).where(alert_states.c.kind == kind, alert_states.c.state != state)
    with engine.connect() as connection:
        return sorted(connection.execute(query).scalars())
