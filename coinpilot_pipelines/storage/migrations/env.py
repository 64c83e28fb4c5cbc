"""Alembic environment: migrations run against the engine handed over by `storage.database`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from coinpilot_pipelines.storage.schema import metadata

config = context.config


def _run(connection) -> None:  # noqa: ANN001 - SQLAlchemy connection
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        user_module_prefix="cp_types.",
    )
    with context.begin_transaction():
        context.run_migrations()


engine = config.attributes.get("engine")
if engine is None:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
with engine.connect() as connection:
    _run(connection)
