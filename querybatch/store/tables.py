"""The tables. Times are UTC epoch seconds (floats): cheap to compare, alike on every database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from querybatch.store.codec import SettingsText, SpecText
from querybatch.store.types import BigId, JSONText


def _partial(where: str) -> dict[str, Any]:
    """The keywords of an index of only the rows ``where`` holds for (SQLite, PostgreSQL).

    A query uses it only if its own condition implies ``where``: ``x = :value`` implies
    ``x IS NOT NULL``, but a status compared with a bound value does not imply a fixed one.
    """
    return {"sqlite_where": text(where), "postgresql_where": text(where)}


def _cacheable(table: str) -> str:
    return f"{table}status = 'SUCCESS' AND substr({table}batch_id, 1, 4) = 'qry_'"


# The sub-queries a data request's cache_minutes may answer from: successful data requests
# (the hidden one-query batches, whose ids begin "qry_"; a batch's begin "qrb_"). A statement
# must say it in these very terms for the partial index to serve it.
CACHEABLE = _cacheable("")
CACHEABLE_QUERIES = _cacheable("queries.")  # in a statement that joins another table

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A custom role belongs to one account (tenant); the built-in ones belong to all and are
# stored under the account "*", a name no account may take (store.keys.BUILTIN_ACCOUNT).
roles = Table(
    "roles",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("effect", String(5), nullable=False),
    Column("actions", JSONText, nullable=False),
    Column("builtin", Boolean, nullable=False, default=False),
    Column("created_at", Double, nullable=False),
)

# Values the server keeps for itself across restarts and nodes (the signing secret).
server_state = Table(
    "server_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(64), nullable=False),
    Column("account", String(64), nullable=False),
    # Where the key's role is stored: the key's own account, or "*" for a built-in role.
    Column("role_account", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
    ForeignKeyConstraint(["role_account", "role"], ["roles.account", "roles.name"]),
)

# A batch is the unit of scheduling: a query batch, or the one query of a data request
# (kind "single"), so that both share limits, counters, timeouts and cancel.
batches = Table(
    "batches",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("account", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("status", String(10), nullable=False),
    Column("settings", SettingsText, nullable=False),
    Column("query_concurrency", Integer, nullable=False),
    Column("timeout_seconds", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("schedule_time", Double, nullable=False),
    Column("start_time", Double),
    Column("end_time", Double),
    Column("cancel_time", Double),
    Column("query_amount", Integer, nullable=False),
    Column("n_queued", Integer, nullable=False),
    Column("n_running", Integer, nullable=False, default=0),
    Column("n_success", Integer, nullable=False, default=0),
    Column("n_failure", Integer, nullable=False, default=0),
    Column("n_stopped", Integer, nullable=False, default=0),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    Column("callback_url", String(2048)),
    Column("callback_sent_at", Double),
    # A batch of many sub-queries is answered once its first slice is stored; the rest are
    # stored behind the answer from its plan (the queries' specs, split again). Both are
    # NULL once every sub-query is stored (engine.batch_storing).
    Column("n_stored", Integer),
    Column("plan", Text),
    # Through which position the stopped batch's rows were looked at for packing (packs);
    # NULL before its first range was.
    Column("packed_through", Integer),
    UniqueConstraint("account", "idempotency_key"),
    Index(None, "status", "kind"),
    Index(None, "status", "end_time"),
    Index(None, "account", "kind", "created_at"),
    # The few batches still being stored, found without reading every batch.
    Index(None, "n_stored", **_partial("n_stored IS NOT NULL")),
)

results = Table(
    "results",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("total_rows", Integer, nullable=False),
    Column("total_columns", Integer, nullable=False),
    Column("run_seconds", Double, nullable=False),
    Column("created_at", Double, nullable=False),
)

# Cluster-wide counters of finished sub-queries per data source and status, for /metrics.
source_stats = Table(
    "source_stats",
    metadata,
    Column("ds_id", String(50), primary_key=True),
    Column("status", String(10), primary_key=True),
    Column("finished", BigInteger, nullable=False),
    Column("run_seconds", Double, nullable=False),
)

# Chunks hold CHUNK_ROWS rows each (the last may hold fewer), so the chunks of a page follow
# from its offsets. They are written while a query runs, before its results row exists; a
# run that never finishes leaves chunks without a results row, which the sweeper removes.
result_chunks = Table(
    "result_chunks",
    metadata,
    Column("result_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("row_count", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
    # Expiry looks for chunks of lost runs among those written since it last looked.
    Index(None, "created_at", "result_id", "seq"),
)

queries = Table(
    "queries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("schedule_id", String(64), nullable=False),
    Column("batch_id", String(32), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String(10), nullable=False),
    Column("ds_id", String(50), nullable=False),
    Column("spec", SpecText, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("request_id", String(64)),
    Column("created_at", Double, nullable=False),
    Column("start_time", Double),
    Column("end_time", Double),
    Column("attempt", Integer, nullable=False, default=0),
    Column("lease_expires_at", Double),
    Column("error_code", String(100)),
    Column("error_message", String(255)),
    Column("error_description", String(2048)),
    Column("excluded_accounts", JSONText),
    Column("result_id", String(32), ForeignKey("results.id")),
    Column("cache_used", Boolean, nullable=False, default=False),
    Column("cache_time", Double),
    UniqueConstraint("account", "schedule_id"),
    UniqueConstraint("batch_id", "position"),
    Index(None, "batch_id", "status", "position"),
    # Partial indexes: a batch of a million sub-queries is stored in one go, and an index
    # entry that every row gets but few rows need costs the store's insert a third more.
    # Only a sub-query in flight (QUEUED or RUNNING) has a lease.
    Index(None, "status", "lease_expires_at", **_partial("lease_expires_at IS NOT NULL")),
    Index(None, "account", "request_id", **_partial("request_id IS NOT NULL")),
    # The cache (a data request's cache_minutes) looks for an identical successful data
    # request only: an entry for each successful sub-query of a batch, at a place its hash
    # picks, cost a fifth of the server's CPU per sub-query.
    Index(None, "fingerprint", "status", **_partial(CACHEABLE)),
    # Deleting a result checks that no sub-query refers to it: without this, a scan per result.
    Index(None, "result_id", **_partial("result_id IS NOT NULL")),
    # The tenant's activity (sub-queries finished per minute, failures by reason) reads the
    # window's finished sub-queries only; one that has not ended (all of a new batch) has no
    # entry, so storing a batch costs nothing more.
    Index(None, "account", "end_time", "status", **_partial("end_time IS NOT NULL")),
)

# What the batch page's account and date filters match, one narrow row per sub-query of a
# batch, written on the batch's first such filter (store.sub_query_views) rather than when the
# batch is stored: storing a batch stays as fast as it was, and only the batches somebody
# filters pay for it. Matching these rows reads a fraction of the pages the sub-queries' specs
# fill, and no JSON. Deleted with the batch's sub-queries (store.upkeep).
sub_query_keys = Table(
    "sub_query_keys",
    metadata,
    Column("batch_id", String(32), ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("accounts", String, nullable=False),  # the spec's account list as JSON, lower case
    Column("start_date", String(10), nullable=False),
    Column("end_date", String(10), nullable=False),
    sqlite_with_rowid=False,
)

# A stopped batch's rows of a range of positions, in the two forms its downloads read: laid
# out on the batch's columns (the sub-query's schedule id first) in one JSON array, and as the
# download's ndjson lines; each compressed (zlib, codec.pack_bytes). A download reads a pack
# instead of each sub-query's result (engine.batch_packs). Ranges of large results are not
# packed.
batch_packs = Table(
    "batch_packs",
    metadata,
    Column("batch_id", String(32), ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
    Column("first_position", Integer, primary_key=True),  # after this one
    Column("last_position", Integer, nullable=False),  # through this one
    Column("row_count", Integer, nullable=False),
    Column("rows", LargeBinary, nullable=False),
    Column("rows_size", Integer, nullable=False),  # before compression
    Column("lines", LargeBinary, nullable=False),
    Column("lines_size", Integer, nullable=False),
    sqlite_with_rowid=False,
)

# Every request id handed out for a query besides the one that created it (a request that
# joined a running query, or reused an ended one): each names the query while it lives.
query_requests = Table(
    "query_requests",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("request_id", String(64), primary_key=True),
    Column("query_id", BigId, ForeignKey("queries.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Double, nullable=False),
    Index(None, "query_id"),
)

# Files of bulk batches: uploads (id = the upload handler), the batch's own copy of its
# upload, and results. They live in the database so that every API node can serve them.
# An upload is "pending" until a PUT completes; a PUT writes into a "part" file first and
# moves its chunks over only when the whole body has arrived.
bulk_files = Table(
    "bulk_files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("state", String(8), nullable=False),
    Column("batch_id", String(36)),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64)),
    Index(None, "batch_id"),
    Index(None, "kind", "expires_at"),
)

bulk_file_chunks = Table(
    "bulk_file_chunks",
    metadata,
    Column(
        "file_id",
        String(40),
        ForeignKey("bulk_files.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# A bulk batch; its operations run as one query batch (query_batch_id). owner/lease_until
# name the API node driving its pipeline, so that another node takes over when it dies.
bulk_batches = Table(
    "bulk_batches",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("status", String(20), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("hash", String(64)),
    Column("description", JSONText),
    Column("created_ts", Double, nullable=False),
    Column("updated_ts", Double, nullable=False),
    Column("upload_id", String(40), nullable=False),
    Column("file_id", String(40)),
    Column("sha256", String(64)),
    Column("query_batch_id", String(32)),
    Column("result_file_id", String(40)),
    Column("lines_total", Integer),
    Column("lines_failed", Integer),
    Column("owner", String(32)),
    Column("lease_until", Double),
    Index(None, "account", "created_ts"),
    Index(None, "status"),
    Index(None, "upload_id"),
)

# Where a tenant's transfers load (issue 18): the type's fields, secrets kept apart and
# encrypted by the engine (never readable from this table alone).
destinations = Table(
    "destinations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("type", String(50), nullable=False),
    Column("display_name", String(255), nullable=False),
    Column("auth_method", String(100)),
    Column("settings", JSONText, nullable=False),
    Column("secrets", String),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index(None, "account", "id"),
)

# A tenant's transfers (issue 18): a data source's schema loaded into a destination on a
# schedule. ``config`` holds the accounts, schedule and settings the API was given;
# ``next_run_at`` is when the schedule is next due (the run scheduler's index).
transfers = Table(
    "transfers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("display_name", String(255), nullable=False),
    Column("data_source_id", String(64), nullable=False),
    Column("schema_id", Integer, nullable=False),
    Column("destination_id", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("config", JSONText, nullable=False),
    Column("next_run_at", Double),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index(None, "account", "id"),
    Index(None, "account", "destination_id"),
    Index(None, "state", "next_run_at"),
)

transfer_runs = Table(
    "transfer_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("transfer_id", Integer, nullable=False),
    Column("data_date", String(10), nullable=False),  # ISO: sorts and compares as a date
    Column("run_type", String(16), nullable=False),  # Recurring | Backfill
    # Which occasion made the run: ``recurring:<due time>`` or ``backfill:<id>``; with the
    # transfer and data date it is unique, so each occasion makes its runs once on any node.
    Column("run_key", String(40), nullable=False),
    Column("backfill_id", Integer),
    Column("status", String(16), nullable=False),
    Column("batch_id", String(32)),
    # The run's queries in its batch, which runs of one backfill share: positions after
    # query_offset, query_count of them. Null for a run started before revision 0013 (its
    # batch was its own: every query).
    Column("query_offset", Integer),
    Column("query_count", Integer),
    Column("rows_loaded", BigInteger),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double),
    Column("ended_at", Double),
    Column("error_message", String(2000)),
    UniqueConstraint("transfer_id", "data_date", "run_key"),
    Index(None, "account", "transfer_id", "data_date"),
    Index(None, "status", "id"),
    Index(None, "backfill_id", "status"),
)

backfills = Table(
    "backfills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("transfer_id", Integer, nullable=False),
    Column("range_start", String(10), nullable=False),  # ISO dates, both included
    Column("range_end", String(10), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("cancelled_at", Double),
    Index(None, "account", "transfer_id", "id"),
)
