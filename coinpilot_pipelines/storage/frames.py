"""Query results as data frames."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, Executable


def query_frame(connection: Connection, query: Executable) -> pd.DataFrame:
    """The rows of ``query``, columns named by its labels. The rows go to pandas as plain tuples,
    which it reads about twice as fast as SQLAlchemy rows (the live sensor reads several per bar)."""
    result = connection.execute(query)
    return pd.DataFrame([tuple(row) for row in result], columns=list(result.keys()))
