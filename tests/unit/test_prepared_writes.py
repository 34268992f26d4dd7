"""Prepared writes (store.prepared.PreparedWrite) against what SQLAlchemy itself writes.

They run the hot writes of every sub-query on the driver's cursor; on SQLite (positional
parameters) and PostgreSQL (named ones) they must store exactly what ``Connection.execute``
would, count changed rows as it does, and join the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from querybatch.store.prepared import PreparedWrite
from querybatch.store.store import Store
from querybatch.store.types import JSONText

metadata = MetaData()
things = Table(
    "prepared_things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("state", String(10), nullable=False),
    Column("tags", JSONText),
)

_INSERT = PreparedWrite(
    insert(things).values(id=bindparam("id"), state="NEW", tags=bindparam("tags"))
)
_MOVE = PreparedWrite(
    update(things)
    .where(things.c.id == bindparam("id"), things.c.state == "NEW")
    .values(state=bindparam("state"), tags=None)
)
_MOVE_RETURNING = PreparedWrite(
    update(things)
    .where(things.c.state == bindparam("from_state"))
    .values(state="DONE")
    .returning(things.c.id, things.c.tags)
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_schema")[0]
    store = Store.open(url, result_ttl=60)
    try:
        metadata.create_all(store.db.engine)
        yield store.db.engine
    finally:
        store.close()


def stored(engine: Engine) -> list[tuple[int, str, object]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(things).order_by(things.c.id))]


def test_values_pass_through_the_column_types_as_sqlalchemy_s_own_execute(engine: Engine) -> None:
    with engine.begin() as conn:
        assert _INSERT.executemany(conn, [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "tags": None}])
        conn.execute(insert(things), [{"id": 3, "state": "NEW", "tags": {"k": [1]}}])
    assert stored(engine) == [(1, "NEW", ["a", "b"]), (2, "NEW", None), (3, "NEW", {"k": [1]})]


def test_rows_changed_are_counted_as_the_conditions_match(engine: Engine) -> None:
    with engine.begin() as conn:
        _INSERT.executemany(conn, [{"id": n, "tags": None} for n in (1, 2, 3)])
        assert _MOVE.execute(conn, {"id": 1, "state": "RUN"}) == 1
        assert _MOVE.execute(conn, {"id": 1, "state": "RUN"}) == 0  # no longer NEW
        moves = [{"id": n, "state": "RUN"} for n in (1, 2, 3, 4)]
        assert _MOVE.executemany(conn, moves) == 2
        assert _MOVE.executemany(conn, []) == 0
    assert [row[1] for row in stored(engine)] == ["RUN", "RUN", "RUN"]


def test_returning_gives_the_changed_rows_decoded(engine: Engine) -> None:
    with engine.begin() as conn:
        _INSERT.executemany(conn, [{"id": 1, "tags": ["x"]}, {"id": 2, "tags": None}])
        rows = _MOVE_RETURNING.returning(conn, {"from_state": "NEW"})
        assert sorted((row[0], row[1]) for row in rows) == [(1, ["x"]), (2, None)]
        assert _MOVE_RETURNING.returning(conn, {"from_state": "NEW"}) == []


def test_a_write_joins_the_caller_s_transaction(engine: Engine) -> None:
    with engine.connect() as conn:
        _INSERT.execute(conn, {"id": 1, "tags": None})
        conn.rollback()
        _INSERT.execute(conn, {"id": 2, "tags": None})
        conn.commit()
    assert [row[0] for row in stored(engine)] == [2]


def test_a_driver_error_is_sqlalchemy_s_as_for_its_own_execute(engine: Engine) -> None:
    with engine.begin() as conn:
        _INSERT.execute(conn, {"id": 1, "tags": None})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        _INSERT.execute(conn, {"id": 1, "tags": None})  # the same key again
    assert len(stored(engine)) == 1


def test_a_list_parameter_is_refused_when_prepared() -> None:
    from sqlalchemy.dialects import sqlite

    expanding = PreparedWrite(update(things).where(things.c.id.in_([1, 2])).values(state="X"))
    with pytest.raises(ValueError, match="list parameter"):
        expanding._compiled_for(sqlite.dialect())
