"""Moving bulk files for ``querybatch bulk``: hashing, the signed upload, the results download.

Files are read and written a block at a time, so a file of any size passes through in
constant memory. Signed links are their own credential: no API key goes with them.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from querybatch.cli.common import errors, fail
from querybatch.cli.http import ApiClient, api_error
from querybatch.errors import ServiceUnavailable

BLOCK = 1024 * 1024
TRANSFER_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def sha256_of(path: Path) -> str:
    """The file's SHA-256 as lowercase hex, the form ``POST /batches`` takes as ``hash``."""
    digest = hashlib.sha256()
    with _opened(path) as file:
        while block := file.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def upload(api: ApiClient, path: Path) -> str:
    """Upload the file to a new signed upload URL; its handler."""
    size = path.stat().st_size
    made = api.json("POST", "/cache")
    with _progress() as bar, _opened(path) as file:
        task = bar.add_task(f"uploading {path.name}", total=size)

        def blocks() -> Iterator[bytes]:
            while block := file.read(BLOCK):
                bar.advance(task, len(block))
                yield block

        # A declared length lets the server refuse an oversized file before it arrives,
        # and keeps httpx from falling back to a chunked body.
        headers = {"Content-Length": str(size), "Content-Type": "application/x-ndjson"}
        _signed(api, "PUT", made["url"], content=blocks(), headers=headers).close()
    handler: str = made["handler"]
    return handler


def withdraw(api: ApiClient, handler: str) -> None:
    """Delete an upload the batch no longer needs; a failure only leaves it to expire."""
    with contextlib.suppress(Exception):
        api.request("DELETE", f"/cache/{handler}")


def results_link(api: ApiClient, batch_id: str) -> str | None:
    """A signed link to the batch's results file; None while it has none."""
    batch = api.json("GET", f"/batches/{batch_id}", params={"download": "true"})
    link: str | None = (batch.get("download") or {}).get("url")
    return link


def download(api: ApiClient, batch_id: str, output: Path) -> int:
    """Write the batch's results file to ``output``; its size in bytes.

    The file is written beside ``output`` and renamed once complete, so an interrupted
    download never leaves a file that looks whole.
    """
    link = results_link(api, batch_id)
    if link is None:
        raise fail(f"batch {batch_id} has no results file yet")
    partial = output.with_name(output.name + ".part")
    try:
        with _stream(api, link) as response, _progress() as bar:
            declared = response.headers.get("content-length")
            task = bar.add_task(f"downloading {batch_id}", total=int(declared or 0) or None)
            with partial.open("wb") as file:
                for block in response.iter_bytes(BLOCK):
                    file.write(block)
                    bar.advance(task, len(block))
        partial.replace(output)
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return output.stat().st_size


def result_lines(
    api: ApiClient, batch_id: str, keep: Callable[[dict[str, Any]], bool]
) -> Iterator[dict[str, Any]]:
    """The lines of the batch's results file that ``keep`` accepts, read as they stream in."""
    link = results_link(api, batch_id)
    if link is None:
        return
    with _stream(api, link) as response:
        for text in response.iter_lines():
            if text.strip():
                line: dict[str, Any] = orjson.loads(text)
                if keep(line):
                    yield line


def _progress() -> Progress:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    # Off when standard error is no terminal: a log gains nothing from a finished bar.
    return Progress(*columns, console=errors, transient=True, disable=not errors.is_terminal)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    try:
        file = path.open("rb")
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from exc
    with file:
        yield file


def _signed(api: ApiClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        with httpx.Client(timeout=TRANSFER_TIMEOUT) as plain:
            response = plain.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"Cannot reach the server at {api.url}", str(exc)) from exc
    if response.status_code >= 400:
        raise api_error(response)
    return response


@contextlib.contextmanager
def _stream(api: ApiClient, url: str) -> Iterator[httpx.Response]:
    try:
        with (
            httpx.Client(timeout=TRANSFER_TIMEOUT) as plain,
            plain.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                response.read()
                raise api_error(response)
            yield response
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"Cannot reach the server at {api.url}", str(exc)) from exc
