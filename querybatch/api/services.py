"""Everything the routes need, built once per app and handed to them as a dependency."""

from __future__ import annotations

from dataclasses import dataclass, field

from querybatch.api.auth import KeyCache
from querybatch.api.batch_shapes import ItemJson
from querybatch.api.links import Links
from querybatch.api.poll import AnswerCache
from querybatch.api.poll_budget import PollBudget
from querybatch.api.ratelimit import RateLimiter
from querybatch.engine.access import Access
from querybatch.engine.backfills import Backfills
from querybatch.engine.bulk_batches import BulkBatches
from querybatch.engine.catalog import Catalog
from querybatch.engine.destinations import Destinations
from querybatch.engine.operations import Operations
from querybatch.engine.queries import Queries
from querybatch.engine.query_batches import QueryBatches
from querybatch.engine.transfer_runs import TransferRuns
from querybatch.engine.transfers import Transfers
from querybatch.engine.uploads import Uploads
from querybatch.settings import Settings


@dataclass
class Services:
    """The engine's services, one per resource, and the edge helpers of one app."""

    settings: Settings
    keys: KeyCache
    limiter: RateLimiter
    links: Links
    bulk_batches: BulkBatches
    uploads: Uploads
    access: Access
    catalog: Catalog
    operations: Operations
    queries: Queries
    query_batches: QueryBatches
    poll_budget: PollBudget
    destinations: Destinations
    transfers: Transfers
    transfer_runs: TransferRuns
    backfills: Backfills
    answers: AnswerCache = field(default_factory=AnswerCache)
    items: ItemJson = field(default_factory=ItemJson)
