"""``DWH_FILES``: Parquet or CSV files on a local directory or S3-compatible storage.

Files are Hive-partitioned by data date, one file per transfer and account::

    <root>/<table>/data_date=2026-11-01/<transfer_id>-<account>.parquet

A load writes each account's file under ``<root>/<table>/_staging/<load id>/`` (a name
readers skip: pyarrow, DuckDB and Spark ignore ``_``-prefixed paths), and only once every
chunk is written moves each into place, replacing the account's previous file in one step
(a rename, or an object PUT); the slice's accounts that yielded no rows lose their file. A
load that fails before that leaves the previous files as they were; a reader sees each
account's old file or its new one, never both, so each row is there exactly once. The
slice as a whole is replaced account by account: a load killed during the moves leaves
some accounts new and the others old, until the run's next load.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, StringConstraints, model_validator

from querybatch.destinations.base import (
    Column,
    Destination,
    DestinationConfig,
    LoadResult,
    RowChunk,
    Setting,
    Slice,
    check_chunk,
    check_identifier,
    check_load,
)
from querybatch.destinations.paths import PATH_PATTERN, inside
from querybatch.errors import BadRequest, DestinationError, DestinationUnreachable, LoadRejected
from querybatch.extras import require

ROW_GROUP = 65_536
"""Rows an account's file holds back before writing them as one row group."""
T = TypeVar("T")


class FilesFields(DestinationConfig):
    """The fields of a ``DWH_FILES`` destination."""

    storage: Literal["local", "s3"] = "local"
    format: Literal["parquet", "csv"] = "parquet"
    path: Annotated[str, StringConstraints(pattern=PATH_PATTERN)] | None = None
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.\-]{1,62}$")] | None = None
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-/]{0,255}$")] = ""
    endpoint_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s@]{1,2000}$")] | None = (
        None
    )
    region: Annotated[str, StringConstraints(max_length=64)] | None = None
    access_key_id: Annotated[str, StringConstraints(max_length=256)] | None = None
    secret_access_key: Annotated[SecretStr, Field(max_length=1000)] | None = None

    @model_validator(mode="after")
    def _where(self) -> FilesFields:
        if self.storage == "local" and not self.path:
            raise ValueError("a local files destination needs 'path'")
        if self.storage == "s3" and not self.bucket:
            raise ValueError("an s3 files destination needs 'bucket'")
        if self.storage == "s3" and not (self.access_key_id and self.secret_access_key):
            # Never the server's own credentials (its environment, its instance role).
            raise ValueError(
                "an s3 files destination needs 'access_key_id' and 'secret_access_key'"
            )
        return self


class FilesDestination(Destination):
    """Parquet or CSV files, through fsspec (local files, or S3 via s3fs)."""

    type_name: ClassVar[str] = "DWH_FILES"
    title: ClassVar[str] = "Files (Parquet, CSV)"
    config_model = FilesFields
    password_field: ClassVar[str | None] = "secret_access_key"
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("storage", "Storage", "select", required=False, options=("local", "s3")),
        Setting("format", "Format", "select", required=False, options=("parquet", "csv")),
        Setting(
            "path",
            "Directory",
            required=False,
            help_text="local: relative to the server's destinations directory for your team",
        ),
        Setting("bucket", "Bucket", required=False),
        Setting("prefix", "Key prefix", required=False),
        Setting("endpoint_url", "Endpoint URL", required=False, help_text="S3-compatible"),
        Setting("region", "Region", required=False),
        Setting("access_key_id", "Access key id", required=False),
        Setting("secret_access_key", "Secret access key", "password", required=False),
    )
    config: FilesFields

    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """An S3-compatible ``endpoint_url``'s host (AWS itself, when it is left out, is not
        listed: its endpoints are public)."""
        config = self.config
        if config.storage != "s3" or not config.endpoint_url:
            return ()
        try:
            parts = urlsplit(config.endpoint_url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise BadRequest(
                "Invalid value for field 'endpoint_url' of a DWH_FILES destination",
                "It is not a valid URL.",
            ) from None
        if not parts.hostname or "@" in parts.netloc:
            raise BadRequest(
                "Invalid value for field 'endpoint_url' of a DWH_FILES destination",
                "It names no host (or holds a user name).",
            )
        return ((parts.hostname, port),)

    def _filesystem(self) -> tuple[Any, str]:
        """The fsspec file system and the root path in it."""
        require("a DWH_FILES destination", "fsspec")
        import fsspec

        config = self.config
        if config.storage == "local":
            root = inside(self.context.local_root, config.path or "")
            return fsspec.filesystem("file", auto_mkdir=True), str(root)
        require("a DWH_FILES destination on S3", "s3fs")
        import s3fs

        client: dict[str, Any] = {}
        if config.region:
            client["region_name"] = config.region
        fs = s3fs.S3FileSystem(
            key=config.access_key_id,
            secret=(
                config.secret_access_key.get_secret_value() if config.secret_access_key else None
            ),
            endpoint_url=config.endpoint_url,
            client_kwargs=client,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        return fs, "/".join(p for p in (config.bucket or "", config.prefix.strip("/")) if p)

    async def test_connection(self) -> None:
        """Write a probe object under the root and remove it again."""

        def check() -> None:
            fs, root = self._filesystem()
            probe = f"{root}/_qb_probe_{uuid.uuid4().hex}"
            try:
                fs.pipe_file(probe, b"")
                fs.rm_file(probe)
            except Exception as exc:
                raise DestinationUnreachable(
                    f"Could not write to {self._where()}", _first_line(exc)
                ) from None

        await asyncio.to_thread(check)

    def _where(self) -> str:
        config = self.config
        if config.storage == "local":
            return f"directory {config.path!r}"
        return f"bucket {config.bucket!r}"

    async def load(
        self,
        table: str,
        part: Slice,
        columns: Sequence[Column],
        chunks: AsyncIterable[RowChunk],
    ) -> LoadResult:
        """Stage one file per account, then move them into place (see the module's docstring)."""
        check_load(table, part, columns)
        check_identifier(table, "table")
        pool = ThreadPoolExecutor(1, thread_name_prefix="qb-files")
        loop = asyncio.get_running_loop()

        async def run(fn: Callable[..., T], *args: Any) -> T:
            return await loop.run_in_executor(pool, fn, *args)

        load: _Load | None = None
        try:
            fs, root = await run(self._filesystem)
            load = _Load(fs, f"{root}/{table}", self.config.format, part, columns)
            async for chunk in chunks:
                check_chunk(chunk, load.accounts, len(columns))
                if chunk.rows:
                    await run(load.write, chunk)
            await run(load.finish)
            await run(load.commit)
        except BaseException as exc:
            if load is not None:
                await run(load.discard)
            if isinstance(exc, DestinationError | LoadRejected) or not isinstance(exc, OSError):
                raise
            raise DestinationUnreachable(
                f"Could not write to {self._where()}", _first_line(exc)
            ) from None
        finally:
            pool.shutdown(wait=False)
        return LoadResult(load.rows, load.base)


@dataclass
class _Writer:
    handle: Any
    writer: Any
    pending: list[Any] = field(default_factory=list)
    pending_rows: int = 0


class _Load:
    """One load's staged files: written on one thread, then committed or discarded."""

    def __init__(
        self, fs: Any, base: str, fmt: str, part: Slice, columns: Sequence[Column]
    ) -> None:
        self.fs = fs
        self.base = base
        self.format = fmt
        self.part = part
        self.columns = columns
        self.accounts = frozenset(part.accounts)
        # Arrow (pyarrow: about 33 MB) loads with a server's first load, not with the server.
        from querybatch.destinations.arrow import schema_of

        self.schema = schema_of(columns, with_date=False)
        self.loaded_at = datetime.now(UTC)
        self.staging = f"{base}/_staging/{uuid.uuid4().hex}"
        self.partition = f"{base}/data_date={part.data_date.isoformat()}"
        self.writers: dict[str, _Writer] = {}
        self.rows = 0

    def _name(self, account: str) -> str:
        return f"{self.part.transfer_id}-{file_slug(account)}.{self.format}"

    def _open(self, account: str) -> _Writer:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        handle = self.fs.open(f"{self.staging}/{self._name(account)}", "wb")
        if self.format == "parquet":
            writer: Any = pq.ParquetWriter(handle, self.schema, compression="zstd")
        else:
            writer = pacsv.CSVWriter(handle, self.schema)
        return _Writer(handle, writer)

    def write(self, chunk: RowChunk) -> None:
        """Add a chunk to its account's staged file (a row group at a time)."""
        target = self.writers.get(chunk.account) or self.writers.setdefault(
            chunk.account, self._open(chunk.account)
        )
        from querybatch.destinations.arrow import chunk_table

        table = chunk_table(
            self.schema, self.columns, chunk, self.part.transfer_id, None, self.loaded_at
        )
        target.pending.append(table)
        target.pending_rows += table.num_rows
        self.rows += table.num_rows
        if target.pending_rows >= ROW_GROUP:
            self._flush(target)

    def _flush(self, target: _Writer) -> None:
        import pyarrow as pa

        if target.pending:
            target.writer.write_table(pa.concat_tables(target.pending))
            target.pending.clear()
            target.pending_rows = 0

    def finish(self) -> None:
        """Write what is held back and close every staged file."""
        for target in self.writers.values():
            self._flush(target)
            target.writer.close()
            target.handle.close()

    def commit(self) -> None:
        """Move each staged file into place; remove the files of accounts without rows."""
        self.fs.makedirs(self.partition, exist_ok=True)
        for account in self.part.accounts:
            final = f"{self.partition}/{self._name(account)}"
            if account in self.writers:
                # Locally a rename replaces the old file; on S3 a copy replaces the object.
                self.fs.mv(f"{self.staging}/{self._name(account)}", final)
            elif self.fs.exists(final):
                self.fs.rm_file(final)
        self._remove_staging()

    def discard(self) -> None:
        """Drop the staged files; the files in place are untouched."""
        for target in self.writers.values():
            for closing in (target.writer.close, target.handle.close):
                try:
                    closing()
                except Exception:  # already closed, or the write itself failed
                    continue
        self._remove_staging()

    def _remove_staging(self) -> None:
        try:
            if self.fs.exists(self.staging):
                self.fs.rm(self.staging, recursive=True)
        except OSError:  # a leftover staging directory is harmless: readers skip it
            return


def file_slug(account: str) -> str:
    """A file name for an account: its safe characters and a short hash (names stay unique)."""
    safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", account)[:60].lstrip(".")
    digest = hashlib.sha256(account.encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
