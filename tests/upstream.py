"""A small JSON REST API on loopback, for the ``http`` connector tests.

``GET /v1/accounts/{account}/stats?from=&to=`` answers the stats rows of one account for the
days ``from``..``to``, in pages: ``page``/``per_page``, ``offset``/``limit`` or ``cursor`` (an
opaque offset) select a page, and every answer carries ``next_cursor`` and ``links.next`` when
more rows follow. Some accounts misbehave on purpose: ``forbidden`` answers 403, ``flaky``
answers 500 ``flaky_failures`` times before it works, ``limited`` answers 429 with
``Retry-After: 7``, ``broken`` always answers 503.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

ACCOUNTS = ("acc-1", "acc-2", "acc-3")
CAMPAIGNS = ("brand", "promo_50%", "o'reilly")
FIRST_DAY = date(2024, 1, 1)
DAYS = 10


def stats_rows(account: str) -> list[dict[str, Any]]:
    """Every raw row of ``account``: one per day and campaign."""
    number = ACCOUNTS.index(account) + 1 if account in ACCOUNTS else 7
    rows = []
    for day in range(DAYS):
        for c, campaign in enumerate(CAMPAIGNS):
            clicks = (day + 1) * (c + 2) * number
            rows.append(
                {
                    "date": (FIRST_DAY + timedelta(days=day)).isoformat() + "T00:00:00Z",
                    "campaign": campaign,
                    "stats": {"clicks": clicks, "cost": str(round(clicks * 0.25, 2))},
                }
            )
    return rows


@dataclass
class Upstream:
    """The server's state: what it was asked, and how it should misbehave."""

    token: str | None = None
    page_size: int = 4
    flaky_failures: int = 2
    calls: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    failures_left: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.calls.append((path, query, headers))
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {}, {"error": "unauthorized"}
        parts = path.split("/")
        if len(parts) != 5 or parts[:3] != ["", "v1", "accounts"] or parts[4] != "stats":
            return 404, {}, {"error": "no such route"}
        account = unquote(parts[3])
        trouble = self._trouble(account)
        if trouble is not None:
            return trouble
        return 200, {}, self._page(path, account, query)

    def _trouble(self, account: str) -> tuple[int, dict[str, str], Any] | None:
        if account == "forbidden":
            return 403, {}, {"error": "no access"}
        if account == "limited":
            return 429, {"Retry-After": "7"}, {"error": "slow down"}
        if account == "broken":
            return 503, {}, {"error": "down"}
        if account == "flaky":
            with self.lock:
                left = self.failures_left.setdefault(account, self.flaky_failures)
                if left > 0:
                    self.failures_left[account] = left - 1
                    return 500, {}, {"error": "oops"}
        return None

    def _page(self, path: str, account: str, query: dict[str, str]) -> dict[str, Any]:
        low, high = query.get("from", "0000"), query.get("to", "9999")
        rows = [r for r in stats_rows(account) if low <= r["date"][:10] <= high]
        size = int(query.get("per_page") or query.get("limit") or self.page_size)
        if "page" in query:
            start = (int(query["page"]) - 1) * size
        else:
            start = int(query.get("offset") or query.get("cursor") or 0)
        chunk = rows[start : start + size]
        # "elsewhere" is a next link to another host, which must never be followed.
        body: dict[str, Any] = {
            "data": {"rows": chunk},
            "links": {},
            "elsewhere": "http://203.0.113.9/steal",
        }
        end = start + len(chunk)
        if end < len(rows):
            body["next_cursor"] = str(end)
            following = {k: v for k, v in query.items() if k not in ("page", "cursor")}
            body["links"]["next"] = f"{path}?{urlencode({**following, 'offset': end})}"
        return body


class _Handler(BaseHTTPRequestHandler):
    upstream: Upstream

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, body = self.upstream.answer(split.path, query, headers)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(upstream: Upstream) -> Iterator[Upstream]:
    """Run ``upstream`` on a free loopback port until the generator is closed."""
    handler = type("Handler", (_Handler,), {"upstream": upstream})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    upstream.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
