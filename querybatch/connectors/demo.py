"""Deterministic synthetic data sources (``ads`` and ``web``) for tests, demos and benchmarks.

Every raw row, one per account, day and row index, is derived from a splitmix64 hash of
``(seed, dataset, account number, date ordinal, row index)``, so the same request always gives
the same rows and nothing is kept between fetches. Rows are generated lazily and aggregated in
windows that are as small as the requested dimensions allow (one day, one day of one account,
one month, or the whole range), so memory stays bounded by the groups of one window.

Per-query knobs arrive in ``request.settings``: ``demo_latency_ms``, ``demo_fail_accounts``,
``demo_rows_per_day`` and ``demo_transient_failures``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import date
from operator import itemgetter
from typing import Any, ClassVar, Literal

from pydantic import Field

from querybatch.connectors.base import Connector, ConnectorConfig, FetchRequest
from querybatch.domain.fields import Account, FieldInfo, Login, Row, Value
from querybatch.domain.filters import Filter
from querybatch.errors import (
    AccountErrors,
    ConfigurationError,
    ConnectorError,
    TransientConnectorError,
)

__all__ = ["CHUNK_ROWS", "DemoConfig", "DemoConnector", "demo_sources", "splitmix64"]

CHUNK_ROWS = 2000
"""The most rows one chunk yielded by :meth:`DemoConnector.fetch` holds."""

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
# Hand the event loop back at least this often (seconds) while aggregating without yielding.
_FAIRNESS_INTERVAL = 0.005

Accumulate = Callable[[int, Iterable[int], Sequence[int], list[list[int]]], None]
Finish = Callable[[list[int]], tuple[Value, ...]]
_Group = tuple[tuple[str, str], tuple[str, str], list[list[int]]]


def splitmix64(x: int) -> int:
    """One splitmix64 output for state ``x``: a fast, well-mixed 64-bit integer hash."""
    z = (x + _GAMMA) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


# The accumulators inline splitmix64 because a function call per raw row halves the speed.
# Component 0 (impressions, pageviews) is positive on every raw row, so a zero there means
# that no raw row reached the slot (all were filtered out).


def _accumulate_ads(
    base: int, rows: Iterable[int], ikey: Sequence[int], slots: list[list[int]]
) -> None:
    for i in rows:
        z = (base + (i + 1) * _GAMMA) & _MASK
        z = ((z ^ (z >> 30)) * _MIX1) & _MASK
        z = ((z ^ (z >> 27)) * _MIX2) & _MASK
        z ^= z >> 31
        impressions = 50 + (z & 0xFFF)
        clicks = impressions * ((z >> 12) & 0x3F) // 1000
        acc = slots[ikey[i]]
        acc[0] += impressions
        acc[1] += clicks
        acc[2] += clicks * (20 + ((z >> 18) & 0xFF))  # cost in cents, summed exactly
        acc[3] += clicks * ((z >> 26) & 0x1F) // 100


def _finish_ads(acc: list[int]) -> tuple[Value, ...]:
    impressions, clicks, cents, conversions = acc
    cost = cents / 100  # already the nearest float to a 2-decimal amount: no round() needed
    ctr = round(clicks / impressions * 100, 2) if impressions else None
    cpc = round(cost / clicks, 2) if clicks else None
    return (impressions, clicks, cost, conversions, ctr, cpc)


def _finish_ads_counts(acc: list[int]) -> tuple[Value, ...]:
    return (acc[0], acc[1], None, acc[3], None, None)


def _ads_finisher(needed: set[str]) -> Finish:
    # Skipping the float work for unrequested metrics doubles output speed on large requests.
    return _finish_ads if needed & {"cost", "ctr", "cpc"} else _finish_ads_counts


def _accumulate_web(
    base: int, rows: Iterable[int], ikey: Sequence[int], slots: list[list[int]]
) -> None:
    for i in rows:
        z = (base + (i + 1) * _GAMMA) & _MASK
        z = ((z ^ (z >> 30)) * _MIX1) & _MASK
        z = ((z ^ (z >> 27)) * _MIX2) & _MASK
        z ^= z >> 31
        pageviews = 10 + (z & 0x3FF)
        sessions = pageviews * (30 + ((z >> 10) & 0x3F)) // 100
        acc = slots[ikey[i]]
        acc[0] += pageviews
        acc[1] += sessions
        acc[2] += sessions * (50 + ((z >> 16) & 0x1F)) // 100


def _finish_web(acc: list[int]) -> tuple[Value, ...]:
    pageviews, sessions, users = acc
    per_session = round(pageviews / sessions, 2) if sessions else None
    return (sessions, users, pageviews, per_session)


def _finish_web_counts(acc: list[int]) -> tuple[Value, ...]:
    return (acc[1], acc[2], acc[0], None)


def _web_finisher(needed: set[str]) -> Finish:
    return _finish_web if "pageviews_per_session" in needed else _finish_web_counts


def _ads_row_values(i: int) -> tuple[str, str]:
    return (f"c-{i + 1:03d}", f"Campaign {i + 1:03d}")


_DEVICES = ("desktop", "mobile", "tablet")


def _web_row_values(i: int) -> tuple[str, str]:
    return (f"/page-{i + 1:03d}", _DEVICES[i % 3])


def _common_dims(label: str) -> tuple[FieldInfo, ...]:
    return (
        FieldInfo("date", "Date", "dim", "date", "Day of the data (YYYY-MM-DD).", "Time"),
        FieldInfo("year_month", "Year & month", "dim", "string", "Month (YYYY-MM).", "Time"),
        FieldInfo(
            "account_id", "Account ID", "dim", "string", f"Id of the {label} account.", "Account"
        ),
        FieldInfo(
            "account_name", "Account name", "dim", "string", "Name of the account.", "Account"
        ),
    )


_ADS_FIELDS = (
    *_common_dims("ads"),
    FieldInfo("campaign_id", "Campaign ID", "dim", "string", "Id of the campaign.", "Campaign"),
    FieldInfo("campaign_name", "Campaign name", "dim", "string", "Campaign name.", "Campaign"),
    FieldInfo("impressions", "Impressions", "met", "int", "Times an ad was shown.", "Delivery"),
    FieldInfo("clicks", "Clicks", "met", "int", "Clicks on ads.", "Delivery"),
    FieldInfo("cost", "Cost", "met", "currency", "Amount spent.", "Cost"),
    FieldInfo("conversions", "Conversions", "met", "int", "Conversions.", "Conversions"),
    FieldInfo("ctr", "CTR", "met", "percent", "Clicks / impressions * 100.", "Delivery", "avg"),
    FieldInfo("cpc", "CPC", "met", "currency", "Cost per click: cost / clicks.", "Cost", "avg"),
)

_WEB_FIELDS = (
    *_common_dims("web analytics"),
    FieldInfo("page_path", "Page path", "dim", "string", "Path of the page viewed.", "Content"),
    FieldInfo(
        "device_category",
        "Device category",
        "dim",
        "string",
        "desktop, mobile or tablet.",
        "Device",
    ),
    FieldInfo("sessions", "Sessions", "met", "int", "Visits to the site.", "Traffic"),
    FieldInfo("users", "Users", "met", "int", "Visitors (summed, not distinct).", "Traffic"),
    FieldInfo("pageviews", "Pageviews", "met", "int", "Pages viewed.", "Traffic"),
    FieldInfo(
        "pageviews_per_session",
        "Pageviews per session",
        "met",
        "float",
        "Pageviews / sessions.",
        "Traffic",
        "avg",
    ),
)


@dataclass(frozen=True, slots=True)
class _Dataset:
    """What differs between ``ads`` and ``web``; field order matches the full-row layout."""

    name: str
    label: str
    salt: int
    default_rows_per_day: int
    fields: tuple[FieldInfo, ...]
    components: int
    row_values: Callable[[int], tuple[str, str]]
    accumulate: Accumulate
    finisher: Callable[[set[str]], Finish]

    @property
    def by_id(self) -> dict[str, FieldInfo]:
        return {f.field_id: f for f in self.fields}

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(f.field_id for f in self.fields if not f.is_metric)


_DATASETS = {
    "ads": _Dataset(
        "ads", "Ads", 0xAD5, 5, _ADS_FIELDS, 4, _ads_row_values, _accumulate_ads, _ads_finisher
    ),
    "web": _Dataset(
        "web", "Web", 0x3EB, 8, _WEB_FIELDS, 3, _web_row_values, _accumulate_web, _web_finisher
    ),
}
# Full rows are (date, year_month, account_id, account_name, row dim 1, row dim 2, *metrics).
_ROW_DIMS = (4, 5)


class DemoConfig(ConnectorConfig):
    """Settings of one demo data source."""

    dataset: Literal["ads", "web"]
    accounts: int = Field(25, ge=1, le=10000)
    latency_ms: float = Field(0, ge=0)
    fail_accounts: list[str] = Field(default_factory=list)
    rows_per_day: int | None = Field(None, ge=1)
    seed: int = 0


@dataclass(frozen=True, slots=True)
class _Plan:
    """One fetch, resolved: what to generate, how to group it and what to yield."""

    dataset: _Dataset
    seed: int
    accounts: tuple[tuple[int, tuple[str, str]], ...]
    failures: dict[str, str]
    start: int
    end: int
    rows_per_day: int
    by_date: bool
    by_month: bool
    by_account: bool
    has_dims: bool
    ikey: tuple[int, ...]
    slot_values: tuple[tuple[str, str], ...]
    finish: Finish
    project: Callable[[Row], Row]
    pre: Callable[[Row], bool] | None
    post: Callable[[Row], bool] | None
    limit: int | None
    latency_ms: float
    transient_failures: int


class DemoConnector(Connector):
    """A synthetic ``ads`` or ``web`` data source: deterministic, lazy and fast.

    Pushes down filters and (when rows are not ordered) the row limit. The class-level
    ``in_flight`` and ``peak`` count concurrent fetches per ``ds_id`` for tests and benchmarks.
    """

    config_model: ClassVar[type[ConnectorConfig]] = DemoConfig
    pushdown: ClassVar[frozenset[str]] = frozenset({"filter", "limit"})

    in_flight: ClassVar[dict[str, int]] = {}
    peak: ClassVar[dict[str, int]] = {}
    _transient_attempts: ClassVar[dict[str, int]] = {}

    def __init__(self, ds_id: str, config: ConnectorConfig) -> None:
        if not isinstance(config, DemoConfig):
            raise ConfigurationError(f"data source {ds_id}: demo connector needs a DemoConfig")
        super().__init__(ds_id, config)
        self.demo_config = config
        self._dataset = _DATASETS[config.dataset]
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
            plan = self._plan(request)
            if plan.latency_ms > 0:
                await asyncio.sleep(plan.latency_ms / 1000)
            _fail_transiently(request, plan.transient_failures)
            if plan.failures:
                raise AccountErrors(plan.failures)
            async for chunk in _stream(plan):
                yield chunk
        finally:
            DemoConnector.in_flight[ds_id] -= 1

    def _plan(self, request: FetchRequest) -> _Plan:
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
        ikey, slot_values = _slots(ds, requested, rows_per_day)
        pre, post = _compile_filters(ds, request)
        limit = (
            request.max_rows if request.max_rows is not None and not request.order_rows else None
        )
        return _Plan(
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
            project=_projector([ds.fields.index(known[f]) for f in request.fields]),
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


def _projector(indices: list[int]) -> Callable[[Row], Row]:
    if len(indices) == 1:
        (index,) = indices
        return lambda row: (row[index],)
    getter: Callable[[Row], Row] = itemgetter(*indices)
    return getter


def _slots(
    ds: _Dataset, requested: set[str], rows_per_day: int
) -> tuple[tuple[int, ...], tuple[tuple[str, str], ...]]:
    """Map each row index to a slot: one per distinct value of the requested row dimensions."""
    names = [ds.fields[j].field_id for j in _ROW_DIMS]
    picked = [k for k, name in enumerate(names) if name in requested]
    seen: dict[tuple[str, ...], int] = {}
    ikey: list[int] = []
    values: list[tuple[str, str]] = []
    for i in range(rows_per_day):
        row = ds.row_values(i)
        key = tuple(row[k] for k in picked)
        slot = seen.get(key)
        if slot is None:
            slot = seen[key] = len(values)
            values.append(row)
        ikey.append(slot)
    return tuple(ikey), tuple(values)


def _compile_filters(
    ds: _Dataset, request: FetchRequest
) -> tuple[Callable[[Row], bool] | None, Callable[[Row], bool] | None]:
    """Compile the filter into a raw-row part (dimensions) and an output-row part."""
    if request.filter is None:
        return None, None
    from querybatch.domain.filters import FilterSyntaxError, compile_filter

    known = ds.by_id
    pre, post = _split_filter(request.filter, set(request.fields), known)
    types = {name: info.data_type for name, info in known.items()}
    try:
        pre_fn = None if pre is None else compile_filter(pre, ds.dims, types)
        post_fn = None if post is None else compile_filter(post, request.fields, types)
    except FilterSyntaxError as exc:
        raise ConnectorError(f"invalid filter: {exc}") from exc
    return pre_fn, post_fn


def _split_filter(
    flt: Filter, requested: set[str], known: Mapping[str, FieldInfo]
) -> tuple[Filter | None, Filter | None]:
    """Split a filter into conditions for raw rows and conditions for aggregated rows.

    Conditions on dimensions hold the same on raw and aggregated rows; conditions on metrics
    only on aggregated rows, so those metrics must be requested.
    """
    for name in sorted(flt.fields):
        if name not in known:
            raise ConnectorError(f"unknown filter field {name!r}")
    if flt.fields <= requested:
        return None, flt
    for name in sorted(flt.fields - requested):
        if known[name].is_metric:
            raise ConnectorError(f"filter field {name} must be requested")
    if not any(known[name].is_metric for name in flt.fields):
        return flt, None
    if len(flt.groups) != 1:
        raise ConnectorError(
            "a filter that ORs metric conditions with conditions on dimensions that are not "
            "requested is not supported; request those dimensions"
        )
    (group,) = flt.groups
    dims = tuple(c for c in group if not known[c.field].is_metric)
    metrics = tuple(c for c in group if known[c.field].is_metric)
    return Filter((dims,)), Filter((metrics,))


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
    if value is None or value < minimum:
        raise ConnectorError(f"setting {name} must be an integer >= {minimum}, got {raw!r}")
    return value


def _float_setting(settings: Mapping[str, Any], name: str) -> float | None:
    raw = settings.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value = _as_float(raw)
    if value is None or value < 0:
        raise ConnectorError(f"setting {name} must be a number >= 0, got {raw!r}")
    return value


def _list_setting(settings: Mapping[str, Any], name: str) -> list[str]:
    raw = settings.get(name)
    if raw is None:
        return []
    if isinstance(raw, str):
        items: Iterable[object] = raw.split(",")
    elif isinstance(raw, list | tuple | set | frozenset):
        items = raw
    else:
        raise ConnectorError(f"setting {name} must be a list or comma-separated text, got {raw!r}")
    if not all(isinstance(item, str) for item in items):
        raise ConnectorError(f"setting {name} must list account ids as text, got {raw!r}")
    return [s for item in items if (s := str(item).strip())]


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
    attempts = DemoConnector._transient_attempts.get(key, 0)
    if attempts < failures:
        DemoConnector._transient_attempts[key] = attempts + 1
        raise TransientConnectorError(
            f"simulated transient failure {attempts + 1} of {failures} (demo_transient_failures)"
        )


# --- generation -------------------------------------------------------------------------

_START = object()


async def _stream(plan: _Plan) -> AsyncIterator[list[Row]]:
    """Re-chunk the generated batches into chunks of ``CHUNK_ROWS`` and apply the limit."""
    limit = plan.limit
    if limit == 0:
        return
    emitted = 0
    pending: list[Row] = []
    last_pause = time.monotonic()
    batches = _generate(plan)
    try:
        for batch in batches:
            pending.extend(batch)
            if limit is not None and emitted + len(pending) >= limit:
                del pending[limit - emitted :]
                break
            if len(pending) >= CHUNK_ROWS:
                chunk, pending = pending[:CHUNK_ROWS], pending[CHUNK_ROWS:]
                emitted += len(chunk)
                yield chunk
            now = time.monotonic()
            if now - last_pause >= _FAIRNESS_INTERVAL:
                await asyncio.sleep(0)
                last_pause = time.monotonic()
        for start in range(0, len(pending), CHUNK_ROWS):
            yield pending[start : start + CHUNK_ROWS]
    finally:
        batches.close()


def _generate(plan: _Plan) -> Generator[list[Row], None, None]:
    """Aggregate window by window; yield output batches (and an empty one per day as a tick)."""
    ds = plan.dataset
    base_seed = splitmix64(splitmix64(plan.seed & _MASK) ^ ds.salt)
    accounts = [(n, splitmix64(base_seed ^ n), names) for n, names in plan.accounts]
    all_rows = range(plan.rows_per_day)
    row_values = [ds.row_values(i) for i in all_rows] if plan.pre is not None else []
    groups: dict[tuple[object, object], _Group] = {}
    window: object = _START
    for ordinal in range(plan.start, plan.end + 1):
        iso = date.fromordinal(ordinal).isoformat()
        dvals = (iso, iso[:7])
        dkey = ordinal if plan.by_date else dvals[1] if plan.by_month else None
        for number, account_seed, avals in accounts:
            akey = number if plan.by_account else None
            wkey = _window_key(plan, dkey, akey)
            if wkey != window:
                yield from _emit(plan, groups)
                groups = {}
                window = wkey
            group = groups.get((dkey, akey))
            if group is None:
                slots = [[0] * ds.components for _ in plan.slot_values]
                group = groups[dkey, akey] = (dvals, avals, slots)
            rows: Iterable[int] = all_rows
            if plan.pre is not None:
                pre, head = plan.pre, dvals + avals
                rows = [i for i in all_rows if pre(head + row_values[i])]
            ds.accumulate(splitmix64(account_seed ^ ordinal), rows, plan.ikey, group[2])
        yield []
    yield from _emit(plan, groups)


def _window_key(plan: _Plan, dkey: object, akey: object) -> object:
    """Groups of different windows never meet again, so a window can be emitted when it ends."""
    if plan.by_date:
        return (dkey, akey)
    return dkey


def _emit(plan: _Plan, groups: dict[tuple[object, object], _Group]) -> Iterator[list[Row]]:
    finish, project, post = plan.finish, plan.project, plan.post
    skip_empty = plan.has_dims
    out: list[Row] = []
    for dvals, avals, slots in groups.values():
        head = dvals + avals
        for acc, values in zip(slots, plan.slot_values, strict=True):
            if skip_empty and acc[0] == 0:
                continue
            row = project(head + values + finish(acc))
            if post is not None and not post(row):
                continue
            out.append(row)
            if len(out) >= CHUNK_ROWS:
                yield out
                out = []
    if out:
        yield out
