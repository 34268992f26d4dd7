"""Column types shared by SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import BigInteger, Integer, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (and so auto-incrementing).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class JSONText(TypeDecorator[Any]):
    """JSON kept as text, encoded with orjson (faster than the stdlib on the hot path)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return orjson.dumps(value).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return orjson.loads(value)
