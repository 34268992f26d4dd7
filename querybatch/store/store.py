"""The store as the rest of the code sees it: one database and its repositories."""

from __future__ import annotations

from dataclasses import dataclass

from querybatch.store.activity import ActivityStore
from querybatch.store.backfills import BackfillStore
from querybatch.store.bulk import BulkStore
from querybatch.store.bulk_files import FileStore
from querybatch.store.database import Database
from querybatch.store.destinations import DestinationStore
from querybatch.store.history import HistoryStore
from querybatch.store.jobs import JobStore
from querybatch.store.keys import KeyStore
from querybatch.store.packs import PackStore
from querybatch.store.requests import RequestStore
from querybatch.store.results import ResultStore
from querybatch.store.runs import RunStore
from querybatch.store.sub_query_views import SubQueryViews
from querybatch.store.transfer_runs import TransferRunStore
from querybatch.store.transfers import TransferStore
from querybatch.store.upkeep import UpkeepStore


@dataclass(frozen=True)
class Store:
    """The database and the repositories built on it."""

    db: Database
    keys: KeyStore
    jobs: JobStore
    sub_queries: SubQueryViews
    runs: RunStore
    upkeep: UpkeepStore
    results: ResultStore
    bulk: BulkStore
    files: FileStore
    requests: RequestStore
    history: HistoryStore
    destinations: DestinationStore
    transfers: TransferStore
    transfer_runs: TransferRunStore
    backfills: BackfillStore
    activity: ActivityStore
    packs: PackStore

    @classmethod
    def open(cls, url: str, *, result_ttl: float, migrate: bool = True) -> Store:
        """Connect to the database at ``url`` and, unless told not to, migrate it."""
        db = Database(url)
        if migrate:
            db.migrate()
        return cls(
            db=db,
            keys=KeyStore(db),
            jobs=JobStore(db, result_ttl),
            sub_queries=SubQueryViews(db),
            runs=RunStore(db),
            upkeep=UpkeepStore(db, result_ttl),
            results=ResultStore(db),
            bulk=BulkStore(db),
            files=FileStore(db),
            requests=RequestStore(db),
            history=HistoryStore(db, result_ttl),
            destinations=DestinationStore(db),
            transfers=TransferStore(db),
            transfer_runs=TransferRunStore(db),
            backfills=BackfillStore(db),
            activity=ActivityStore(db),
            packs=PackStore(db, result_ttl),
        )

    def close(self) -> None:
        """Release the connections and threads."""
        self.db.close()
