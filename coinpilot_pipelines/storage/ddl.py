"""The reviewed DDL snapshot (``sql/schema_postgresql.sql``), rendered from the schema."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from coinpilot_pipelines.storage.schema import metadata
from coinpilot_pipelines.storage.sql_files import SQL_DIR

SNAPSHOT = SQL_DIR / "schema_postgresql.sql"
HEADER = (
    "-- PostgreSQL DDL of the application schema, rendered from coinpilot_pipelines/storage/schema.py.\n"
    "-- Reviewed snapshot: a test fails when it drifts from the schema or the Alembic migrations.\n"
    "-- Regenerate with: python -m coinpilot_pipelines.storage.ddl\n"
)


def render_postgresql_ddl() -> str:
    dialect = postgresql.dialect()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
    body = "\n\n".join(statements)
    return HEADER + "\n" + "\n".join(line.rstrip() for line in body.splitlines()) + "\n"


if __name__ == "__main__":
    SNAPSHOT.write_text(render_postgresql_ddl())
