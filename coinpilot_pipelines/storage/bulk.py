"""Bulk idempotent upserts of data frames into any table.

PostgreSQL: ``COPY`` into a temporary table (CSV written by pyarrow), then one
``INSERT ... ON CONFLICT (key) DO UPDATE``. SQLite: one executemany upsert.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql as pgsql
from sqlalchemy import Connection, Table, column, select, table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def upsert_frame(connection: Connection, target: Table, frame: pd.DataFrame, *, key: Sequence[str],
                 keep: Sequence[str] = ()) -> int:
    """Insert or overwrite the rows of ``frame`` (its columns are ``target``'s); returns the row count.
    The ``keep`` columns of a stored row keep their first values (such as when it was first computed)."""
    if frame.empty:
        return 0
    columns = list(frame.columns)
    updates = [c for c in columns if c not in key and c not in keep]
    if connection.dialect.name != "postgresql":
        statement = sqlite_insert(target)
        statement = statement.on_conflict_do_update(
            index_elements=list(key), set_={c: statement.excluded[c] for c in updates})
        # NaN and NaT become NULL; building the dicts from one object array is about ten times
        # faster than pandas' to_dict, which the live chain pays for every bar's rows.
        values = frame.astype(object).to_numpy()
        values[pd.isna(values)] = None
        connection.execute(statement, [dict(zip(columns, row, strict=True)) for row in values.tolist()])
        return len(frame)

    stage = f"{target.name}_stage"
    driver = connection.connection.driver_connection
    driver.execute(pgsql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP")
                   .format(pgsql.Identifier(stage), pgsql.Identifier(target.name)))
    driver.execute(pgsql.SQL("TRUNCATE {}").format(pgsql.Identifier(stage)))
    buffer = io.BytesIO()
    # pyarrow turns NaN into nulls, which CSV COPY reads as NULL.
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                    pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    copy = pgsql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        pgsql.Identifier(stage), pgsql.SQL(", ").join(pgsql.Identifier(c) for c in columns))
    with driver.cursor().copy(copy) as writer:
        writer.write(buffer.getvalue())
    staged = table(stage, *(column(c) for c in columns))
    statement = pg_insert(target).from_select(columns, select(*(staged.c[c] for c in columns)))
    connection.execute(statement.on_conflict_do_update(
        index_elements=list(key), set_={c: statement.excluded[c] for c in updates}))
    return len(frame)
