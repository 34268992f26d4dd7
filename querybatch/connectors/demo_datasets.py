"""The demo datasets: their fields, accounts' row values, and the deterministic hash behind them.

Every raw row is derived from a splitmix64 hash of ``(seed, dataset, account number, date
ordinal, row index)``; metrics are accumulated as integers and finished per dataset.
"""

from __future__ import annotations

from collections.abc import (
    Callable,
    Iterable,
    Sequence,
)
from dataclasses import dataclass, field

from querybatch.domain.fields import FieldInfo, Value

CHUNK_ROWS = 2000
"""The most rows one chunk yielded by :meth:`DemoConnector.fetch` holds."""

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB

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


# Compared by identity (eq=False): each dataset is one module-level object, and identity
# keeps it cheap to hash as a cache key.
@dataclass(frozen=True, slots=True, eq=False)
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
    # Derived once, not per fetch: every sub-query's plan looks fields up by id.
    by_id: dict[str, FieldInfo] = field(init=False, repr=False)
    position: dict[str, int] = field(init=False, repr=False)
    dims: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {f.field_id: f for f in self.fields})
        object.__setattr__(self, "position", {f.field_id: i for i, f in enumerate(self.fields)})
        dims = tuple(f.field_id for f in self.fields if not f.is_metric)
        object.__setattr__(self, "dims", dims)


DATASETS = {
    "ads": _Dataset(
        "ads", "Ads", 0xAD5, 5, _ADS_FIELDS, 4, _ads_row_values, _accumulate_ads, _ads_finisher
    ),
    "web": _Dataset(
        "web", "Web", 0x3EB, 8, _WEB_FIELDS, 3, _web_row_values, _accumulate_web, _web_finisher
    ),
}
# Full rows are (date, year_month, account_id, account_name, row dim 1, row dim 2, *metrics).
_ROW_DIMS = (4, 5)
