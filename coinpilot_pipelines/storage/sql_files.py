"""The SQL the pipeline runs, kept as reviewed files under ``sql/`` and loaded by name.

A query that reads the same on every database is ``sql/NAME.sql``; where time arithmetic
differs, ``sql/postgresql/NAME.sql`` and ``sql/sqlite/NAME.sql`` take precedence. Parameters
are always bound, never formatted into the text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, TextClause, bindparam, text
from sqlalchemy.types import TypeEngine

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


class SqlFileMissing(FileNotFoundError):
    pass


@lru_cache(maxsize=64)
def _read(dialect: str, name: str) -> str:
    for path in (SQL_DIR / dialect / f"{name}.sql", SQL_DIR / f"{name}.sql"):
        if path.is_file():
            return path.read_text()
    raise SqlFileMissing(f"sql/{name}.sql not found under {SQL_DIR} (is the repository's sql/ next to the package?)")


def load_sql(
    engine: Engine,
    name: str,
    *,
    bind_types: dict[str, TypeEngine] | None = None,
    result_types: dict[str, TypeEngine] | None = None,
) -> TextClause:
    """The named query for ``engine``'s dialect, with typed parameters and result columns."""
    clause = text(_read(engine.dialect.name, name))
    if bind_types:
        clause = clause.bindparams(*(bindparam(key, type_=value) for key, value in bind_types.items()))
    if result_types:
        clause = clause.columns(**result_types)
    return clause
