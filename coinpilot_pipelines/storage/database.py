"""Engines for the application database, migrated to the newest schema before first use."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same for every process migrating this database.
_MIGRATION_LOCK_ID = 0x636F696E70696C6F  # "coinpilo"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class DatabaseError(RuntimeError):
    """The application database cannot be reached or migrated; the message says which and why."""


def normalize_url(url: str) -> URL:
    """Parse a database URL, steering PostgreSQL to psycopg 3 (the bulk COPY path needs it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise DatabaseError(f"unsupported database backend {parsed.get_backend_name()!r}")
    return parsed


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API hook
    cursor = dbapi_connection.cursor()
    # WAL lets the Dagster UI read while a run writes; the busy timeout rides out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_database_engine(url: str) -> Engine:
    """A new engine, without migrating. Most code wants `get_engine` instead."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Pooled connections move between threads (the candle writer); each is used by one at a time.
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def _head_revision(config: Config) -> str | None:
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str | None:
    """Migrate to the newest schema. Idempotent and safe when several processes start at once."""
    config = alembic_config(engine)
    head = _head_revision(config)
    try:
        if current_revision(engine) == head:
            return head
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
                try:
                    if current_revision(engine) != head:
                        command.upgrade(config, "head")
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_ID})
                    connection.commit()
        else:
            with FileLock(_sqlite_lock_path(engine)):
                if current_revision(engine) != head:
                    command.upgrade(config, "head")
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the one thing a user needs to know
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot migrate database {where}: {exc.__class__.__name__}: {exc}") from exc
    return head


def _sqlite_lock_path(engine: Engine) -> str:
    database = engine.url.database or ""
    if not database or database == ":memory:":
        return str(Path.home() / ".coinpilot-migrate.lock")
    return f"{database}.migrate.lock"


def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url``, migrated on first use."""
    key = normalize_url(url).render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_database_engine(url)
            upgrade(engine)
            _engines[key] = engine
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
