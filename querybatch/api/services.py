"""Everything the routes need, built once per app and handed to them as a dependency."""

from __future__ import annotations

from dataclasses import dataclass

from querybatch.api.auth import KeyCache
from querybatch.api.links import Links
from querybatch.api.ratelimit import RateLimiter
from querybatch.connectors.registry import SourceRegistry
from querybatch.engine.bulk import BulkRunner
from querybatch.engine.queries import Queries
from querybatch.engine.query_batches import QueryBatches
from querybatch.engine.service import Engine
from querybatch.settings import Settings
from querybatch.store.store import Store


@dataclass
class Services:
    """The store, the engine, the data sources and the edge helpers of one app."""

    settings: Settings
    store: Store
    sources: SourceRegistry
    engine: Engine
    keys: KeyCache
    limiter: RateLimiter
    links: Links
    bulk: BulkRunner
    queries: Queries
    query_batches: QueryBatches
