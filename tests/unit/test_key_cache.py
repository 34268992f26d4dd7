"""The key cache: real keys are remembered, and made-up keys cannot push them out."""

from __future__ import annotations

from typing import cast

import pytest

from querybatch.api.auth import KeyCache
from querybatch.engine.access import Access
from querybatch.errors import Unauthorized
from querybatch.store.records import KeyRecord, RoleRecord
from querybatch.store.store import Store

REAL = "qb_real_key_0123456789abcdefghijklmnopqrstu"


class CountingStore:
    """Just enough of a Store for the cache (read through Access): one real key, and a count
    of store reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.keys = self

    async def authenticate(self, secret: str) -> KeyRecord | None:
        self.reads += 1
        if secret != REAL:
            return None
        return KeyRecord("key_1", "real", REAL[:10], "admin", "default", 0.0, None)

    async def get_role(self, account: str, name: str) -> RoleRecord | None:
        self.reads += 1
        return RoleRecord(name, "deny", (), True)


def cache_of(store: CountingStore) -> KeyCache:
    return KeyCache(Access(cast(Store, store)), ttl=60)


async def test_a_real_key_is_read_from_the_store_once_within_its_ttl() -> None:
    store = CountingStore()
    cache = cache_of(store)
    for _ in range(5):
        assert (await cache.authenticate(REAL)).key.id == "key_1"
    assert store.reads == 2  # the key, then its role


async def test_a_flood_of_made_up_keys_does_not_evict_a_real_one() -> None:
    store = CountingStore()
    cache = cache_of(store)
    await cache.authenticate(REAL)
    for n in range(KeyCache.MAX_ENTRIES + 50):
        with pytest.raises(Unauthorized):
            await cache.authenticate(f"qb_made_up_{n:08d}")
    reads = store.reads
    await cache.authenticate(REAL)
    assert store.reads == reads, "the real key was still remembered"


async def test_a_made_up_key_is_remembered_as_unknown_within_the_ttl() -> None:
    store = CountingStore()
    cache = cache_of(store)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await cache.authenticate("qb_made_up_key")
    assert store.reads == 1
