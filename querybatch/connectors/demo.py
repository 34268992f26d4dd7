"""Deterministic synthetic data sources (``ads`` and ``web``) for tests, demos and benchmarks.

Every raw row, one per account, day and row index, is derived from a splitmix64 hash of
``(seed, dataset, account number, date ordinal, row index)``, so the same request always gives
the same rows and nothing is kept between fetches. Rows are generated lazily and aggregated in
windows that are as small as the requested dimensions allow (one day, one day of one account,
one month, or the whole range), so memory stays bounded by the groups of one window.

Per-query knobs arrive in ``request.settings``: ``demo_latency_ms``, ``demo_fail_accounts``,
``demo_rows_per_day`` and ``demo_transient_failures``. Any tenant may set them, so each has a
maximum (``SETTING_MAXIMA``); a value out of range fails the query with a ConnectorError.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import (
    AsyncGenerator,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any, ClassVar, Literal

from pydantic import Field

from querybatch.connectors.base import INLINE_WORK, Connector, ConnectorConfig, FetchRequest
from querybatch.connectors.demo_datasets import CHUNK_ROWS, DATASETS, splitmix64
from querybatch.connectors.demo_rows import (
    DemoPlan,
    compile_filters,
    group_slots,
    projector,
    stream_rows,
)
from querybatch.domain.fields import Account, FieldInfo, Login, Row
from querybatch.errors import (
    AccountErrors,
    ConfigurationError,
    ConnectorError,
    TransientConnectorError,
)

__all__ = [
    "CHUNK_ROWS",
    "SETTING_MAXIMA",
    "DemoConfig",
    "DemoConnector",
    "demo_sources",
    "splitmix64",
]

# The most a query's settings may ask of a demo source. Generation costs rows_per_day x days
# x accounts, and 10,000 raw rows a day is 1,000 times the stock datasets (the million-row
# benchmark uses 1,000). Latency is a sleep that holds a run slot: ten minutes is already
# longer than any test or demo needs. Transient failures are retried by the engine
# (QB_RETRIES, 3 by default), so more than 10 only ever means FAILURE. The account list
# cannot usefully name more accounts than a source may have.
SETTING_MAXIMA: dict[str, int] = {
    "demo_rows_per_day": 10_000,
    "demo_latency_ms": 600_000,
    "demo_transient_failures": 10,
    "demo_fail_accounts": 10_000,
}
# The most raw rows one fetch may generate (about 20 s of a core): generation runs in a
# thread, but a thread busy for hours still holds a slot of the shared pool and the GIL.
MAX_COST = 10_000_000
# Simulated transient failures remember how often each distinct request failed; this many
# requests at most, the oldest forgotten first, so tenants cannot grow it without bound.
_TRANSIENT_MEMORY = 10_000


class DemoConfig(ConnectorConfig):
    """Settings of one demo data source."""

    dataset: Literal["ads", "web"]
    accounts: int = Field(25, ge=1, le=10000)
    latency_ms: float = Field(0, ge=0)
    fail_accounts: list[str] = Field(default_factory=list)
    rows_per_day: int | None = Field(None, ge=1)
    seed: int = 0


class DemoConnector(Connector):
    """A synthetic ``ads`` or ``web`` data source: deterministic, lazy and fast.

    Pushes down filters and (when rows are not ordered) the row limit. The class-level
    ``in_flight`` and ``peak`` count concurrent fetches per ``ds_id`` for tests and benchmarks.
    """

    config_model: ClassVar[type[ConnectorConfig]] = DemoConfig
    pushdown: ClassVar[frozenset[str]] = frozenset({"filter", "limit"})

    query_settings: ClassVar[Mapping[str, str]] = {
        "demo_latency_ms": "milliseconds each fetch waits before its rows",
        "demo_rows_per_day": "raw rows generated per account and day",
        "demo_fail_accounts": "accounts that fail with an account error",
        "demo_transient_failures": "times a fetch fails transiently before it succeeds",
    }
    in_flight: ClassVar[dict[str, int]] = {}
    peak: ClassVar[dict[str, int]] = {}
    _transient_attempts: ClassVar[dict[str, int]] = {}

    def __init__(self, ds_id: str, config: ConnectorConfig) -> None:
        if not isinstance(config, DemoConfig):
            raise ConfigurationError(f"data source {ds_id}: demo connector needs a DemoConfig")
        super().__init__(ds_id, config)
        self.demo_config = config
        self._dataset = DATASETS[config.dataset]
        label = self._dataset.label
        self._accounts = tuple(
            Account(
                f"{config.dataset}-{n:04d}",
                f"Demo {label} Account {n}",
                "North" if n % 2 else "South",
            )
            for n in range(1, config.accounts + 1)
        )
        self._account_numbers = {a.account_id: n for n, a in enumerate(self._accounts, 1)}

    @classmethod
    def reset_stats(cls) -> None:
        """Forget concurrency counts and the attempts of simulated transient failures."""
        DemoConnector.in_flight.clear()
        DemoConnector.peak.clear()
        DemoConnector._transient_attempts.clear()

    async def fields(self) -> Sequence[FieldInfo]:
        """The dimensions and metrics of this source's dataset."""
        return self._dataset.fields

    async def accounts(self, users: Sequence[str] = ()) -> Sequence[Login]:
        """Two logins: a team holding the odd-numbered accounts, an agency the even ones."""
        name, label = self._dataset.name, self._dataset.label
        logins = [
            Login(f"{name}.team@demo.example", f"Demo {label} Team", self._accounts[0::2]),
            Login(f"{name}.agency@demo.example", f"Demo {label} Agency", self._accounts[1::2]),
        ]
        if not users:
            return logins
        wanted = {u.casefold() for u in users}
        return [login for login in logins if login.ds_user.casefold() in wanted]

    async def fetch(self, request: FetchRequest) -> AsyncGenerator[Sequence[Row], None]:
        """Yield the aggregated rows of ``request`` in chunks of at most ``CHUNK_ROWS``."""
        ds_id = self.ds_id
        count = DemoConnector.in_flight.get(ds_id, 0) + 1
        DemoConnector.in_flight[ds_id] = count
        DemoConnector.peak[ds_id] = max(DemoConnector.peak.get(ds_id, 0), count)
        try:
            # Small fetches (most batch sub-queries) cost less than a thread hop: they run
            # here. Anything bigger is planned and generated in a worker thread.
            cost = self._cost(request)
            if cost > MAX_COST:
                raise ConnectorError(
                    f"this query would generate {cost:,} raw demo rows (rows a day x days x "
                    f"accounts x (1 + filter conditions)); at most {MAX_COST:,}: split it by "
                    "date or account, or ask for fewer demo_rows_per_day"
                )
            threaded = cost > INLINE_WORK
            plan = await asyncio.to_thread(self._plan, request) if threaded else self._plan(request)
            if plan.latency_ms > 0:
                await asyncio.sleep(plan.latency_ms / 1000)
            _fail_transiently(request, plan.transient_failures)
            if plan.failures:
                raise AccountErrors(plan.failures)
            async for chunk in stream_rows(plan, threaded=threaded):
                yield chunk
        finally:
            DemoConnector.in_flight[ds_id] -= 1

    def _cost(self, request: FetchRequest) -> int:
        """Raw rows to generate, times the filter conditions each is tested against."""
        try:
            rows_per_day = _int_setting(request.settings, "demo_rows_per_day", 1)
        except ConnectorError:
            return 0  # planning fails at once, wherever it runs
        if rows_per_day is None:
            rows_per_day = self.demo_config.rows_per_day or self._dataset.default_rows_per_day
        days = max((request.end_date - request.start_date).days + 1, 0)
        accounts = len(request.accounts) or len(self._accounts)
        conditions = sum(len(group) for group in request.filter.groups) if request.filter else 0
        return rows_per_day * days * accounts * (1 + conditions)

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Refuse per-query knobs outside ``SETTING_MAXIMA`` (ConnectorError naming the knob)."""
        _int_setting(settings, "demo_rows_per_day", 1)
        _float_setting(settings, "demo_latency_ms")
        _list_setting(settings, "demo_fail_accounts")
        _int_setting(settings, "demo_transient_failures", 0)

    def _plan(self, request: FetchRequest) -> DemoPlan:
        ds = self._dataset
        known = ds.by_id
        if not request.fields:
            raise ConnectorError("no fields requested")
        for name in request.fields:
            if name not in known:
                raise ConnectorError(f"unknown field {name!r} for data source {self.ds_id}")
        if request.start_date > request.end_date:
            raise ConnectorError("start_date is after end_date")
        settings = request.settings
        cfg = self.demo_config
        rows_per_day = _int_setting(settings, "demo_rows_per_day", 1)
        if rows_per_day is None:
            rows_per_day = cfg.rows_per_day or ds.default_rows_per_day
        latency = _float_setting(settings, "demo_latency_ms")
        fail = {*cfg.fail_accounts, *_list_setting(settings, "demo_fail_accounts")}
        accounts, failures = self._resolve_accounts(request.accounts, fail)
        requested = set(request.fields)
        ikey, slot_values = group_slots(ds, requested, rows_per_day)
        pre, post = compile_filters(ds, request)
        limit = (
            request.max_rows if request.max_rows is not None and not request.order_rows else None
        )
        return DemoPlan(
            dataset=ds,
            seed=cfg.seed,
            accounts=accounts,
            failures=failures,
            start=request.start_date.toordinal(),
            end=request.end_date.toordinal(),
            rows_per_day=rows_per_day,
            by_date="date" in requested,
            by_month="year_month" in requested,
            by_account=bool(requested & {"account_id", "account_name"}),
            has_dims=any(not known[f].is_metric for f in requested),
            ikey=ikey,
            slot_values=slot_values,
            finish=ds.finisher(requested),
            project=projector([ds.position[f] for f in request.fields]),
            pre=pre,
            post=post,
            limit=None if limit is None else max(limit, 0),
            latency_ms=cfg.latency_ms if latency is None else latency,
            transient_failures=_int_setting(settings, "demo_transient_failures", 0) or 0,
        )

    def _resolve_accounts(
        self, requested: Sequence[str], fail: set[str]
    ) -> tuple[tuple[tuple[int, tuple[str, str]], ...], dict[str, str]]:
        ids = requested or [a.account_id for a in self._accounts]
        found: dict[int, tuple[str, str]] = {}
        failures: dict[str, str] = {}
        for account_id in ids:
            number = self._account_numbers.get(account_id)
            if number is None:
                failures[account_id] = f"account not found in data source {self.ds_id}"
            elif account_id in fail:
                failures[account_id] = "account is set to fail (demo)"
            else:
                found.setdefault(number, (account_id, self._accounts[number - 1].account_name))
        return tuple(found.items()), failures


def demo_sources(
    latency_ms: float = 0, fail_accounts: Sequence[str] = (), rows_per_day: int | None = None
) -> dict[str, DemoConnector]:
    """The two stock demo sources, ``DEMO_ADS`` and ``DEMO_WEB``, with server-wide defaults."""
    return {
        f"DEMO_{name.upper()}": DemoConnector(
            f"DEMO_{name.upper()}",
            DemoConfig(
                dataset=name,
                latency_ms=latency_ms,
                fail_accounts=list(fail_accounts),
                rows_per_day=rows_per_day,
            ),
        )
        for name in ("ads", "web")
    }


# --- planning helpers -------------------------------------------------------------------


def _as_int(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    number = _as_float(raw)
    if number is not None and number.is_integer():
        return int(number)
    return None


def _as_float(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        number = float(raw)
    elif isinstance(raw, str):
        try:
            number = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _int_setting(settings: Mapping[str, Any], name: str, minimum: int) -> int | None:
    raw = settings.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value = _as_int(raw)
    maximum = SETTING_MAXIMA[name]
    if value is None or not minimum <= value <= maximum:
        raise ConnectorError(
            f"setting {name} must be an integer from {minimum} to {maximum}, got {_shown(raw)}"
        )
    return value


def _float_setting(settings: Mapping[str, Any], name: str) -> float | None:
    raw = settings.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value = _as_float(raw)
    maximum = SETTING_MAXIMA[name]
    if value is None or not 0 <= value <= maximum:
        raise ConnectorError(
            f"setting {name} must be a number from 0 to {maximum}, got {_shown(raw)}"
        )
    return value


def _shown(raw: object) -> str:
    """The offending value for a message, cut short: it is the tenant's and may be huge."""
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def _list_setting(settings: Mapping[str, Any], name: str) -> list[str]:
    raw = settings.get(name)
    if raw is None:
        return []
    if isinstance(raw, str):
        items: Iterable[object] = raw.split(",")
    elif isinstance(raw, list | tuple | set | frozenset):
        items = raw
    else:
        raise ConnectorError(
            f"setting {name} must be a list or comma-separated text, got {_shown(raw)}"
        )
    if not all(isinstance(item, str) for item in items):
        raise ConnectorError(f"setting {name} must list account ids as text, got {_shown(raw)}")
    accounts = [s for item in items if (s := str(item).strip())]
    if len(accounts) > SETTING_MAXIMA[name]:
        raise ConnectorError(
            f"setting {name} names {len(accounts)} accounts; the maximum is {SETTING_MAXIMA[name]}"
        )
    return accounts


def _fingerprint(request: FetchRequest) -> str:
    settings = sorted((str(k), repr(v)) for k, v in request.settings.items())
    return repr(
        (
            request.ds_id,
            request.accounts,
            request.start_date,
            request.end_date,
            request.fields,
            request.filter,
            request.order_rows,
            request.max_rows,
            settings,
            request.segments,
            request.users,
        )
    )


def _fail_transiently(request: FetchRequest, failures: int) -> None:
    if failures <= 0:
        return
    key = _fingerprint(request)
    remembered = DemoConnector._transient_attempts
    attempts = remembered.get(key, 0)
    if attempts < failures:
        if key not in remembered and len(remembered) >= _TRANSIENT_MEMORY:
            del remembered[next(iter(remembered))]
        remembered[key] = attempts + 1
        raise TransientConnectorError(
            f"simulated transient failure {attempts + 1} of {failures} (demo_transient_failures)"
        )


# --- generation -------------------------------------------------------------------------
