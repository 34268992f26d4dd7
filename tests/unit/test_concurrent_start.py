"""API nodes that start at the same moment on a new PostgreSQL store race to create the same
rows (the signing secret, the built-in roles, QB_ADMIN_KEY); every one of them starts, and
all of them end up with the same rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from querybatch.store.store import Store

NODES = 6
ADMIN_KEY = "qb_race_admin_key_0123456789abcdefghijklmnopqrst"
T = TypeVar("T")


def at_once(url: str, step: Callable[[Store], T]) -> list[T]:
    """``step`` run on NODES stores of the same schema, released together."""
    stores = [Store.open(url, result_ttl=60, migrate=False) for _ in range(NODES)]
    gate = threading.Barrier(NODES)

    def node(store: Store) -> T:
        gate.wait()
        return step(store)

    try:
        with ThreadPoolExecutor(NODES) as pool:
            return list(pool.map(node, stores))
    finally:
        for store in stores:
            store.close()


def test_nodes_starting_at_once_on_a_new_store_all_start_with_the_same_rows(
    pg_schema: tuple[str, str],
) -> None:
    url = pg_schema[0]
    Store.open(url, result_ttl=60).close()  # migrated once, as the first node does
    secrets = at_once(url, lambda store: store.keys.server_secret.blocking(None))
    assert len(set(secrets)) == 1
    at_once(url, lambda store: store.keys.ensure_builtin_roles.blocking(time.time()))
    keys = at_once(
        url,
        lambda store: store.keys.ensure_key.blocking(
            ADMIN_KEY, "admin (QB_ADMIN_KEY)", "admin", "default", time.time()
        ),
    )
    assert len({key.id for key in keys}) == 1
    store = Store.open(url, result_ttl=60, migrate=False)
    try:
        assert [r.name for r in store.keys.list_roles.blocking("default")] == [
            "admin",
            "analyst",
            "viewer",
        ]
    finally:
        store.close()
