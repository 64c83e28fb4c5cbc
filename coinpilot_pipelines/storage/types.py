"""Column types that keep the same meaning on PostgreSQL and SQLite.

PostgreSQL gets native ``timestamptz`` and unconstrained ``numeric``. SQLite has neither, so
timestamps are stored as integer epoch milliseconds (sortable, and plain integer arithmetic in
the continuity SQL) and decimals as their exact text (SQLite's NUMERIC affinity would turn them
into binary floats).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from coinpilot_pipelines.market.intervals import from_ms, to_ms


class UtcTimestamp(TypeDecorator[datetime]):
    """Timezone-aware UTC datetime: ``timestamptz`` on PostgreSQL, epoch ms on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[object]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> object:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} refused: store timezone-aware UTC only")
        return to_ms(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: object, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_ms(int(value))  # type: ignore[arg-type]
        assert isinstance(value, datetime)
        return value.astimezone(from_ms(0).tzinfo)


class ExactDecimal(TypeDecorator[Decimal]):
    """An exact decimal: unconstrained ``numeric`` on PostgreSQL, decimal text on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[object]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | str | None, dialect: Dialect) -> object:
        if value is None:
            return None
        exact = Decimal(value) if isinstance(value, str) else value
        if not isinstance(exact, Decimal):
            raise TypeError(f"{value!r} is a {type(value).__name__}; pass Decimal for exact columns")
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))
