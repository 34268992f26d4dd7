"""Grouping rows in memory by the requested dimensions, for connectors whose source cannot.

The aggregations behave as SQL's do, so that every connector answers alike: NULL (None)
values are skipped, ``sum``/``avg``/``min``/``max`` of no value is None, ``count`` counts the
values that are not None.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from querybatch.domain.fields import Aggregation, Row, Value

__all__ = ["GroupAggregator"]


@dataclass(slots=True)
class _State:
    total: Any = None
    count: int = 0
    low: Any = None
    high: Any = None

    def add(self, value: Any) -> None:
        if value is None:
            return
        self.count += 1
        self.total = value if self.total is None else self.total + value
        if self.low is None or value < self.low:
            self.low = value
        if self.high is None or value > self.high:
            self.high = value

    def result(self, aggregation: Aggregation) -> Value:
        if aggregation == "count":
            return self.count
        if aggregation == "avg":
            return None if not self.count else self.total / self.count
        if aggregation == "min":
            return self.low  # type: ignore[no-any-return]
        if aggregation == "max":
            return self.high  # type: ignore[no-any-return]
        return self.total  # type: ignore[no-any-return]


@dataclass(slots=True)
class GroupAggregator:
    """Folds raw rows into one row per distinct tuple of dimension values.

    ``layout`` gives, for each output column, either ``("dim", i)`` (the i-th key value) or
    ``("met", j)`` (the j-th metric, aggregated with ``aggregations[j]``).
    """

    layout: Sequence[tuple[str, int]]
    aggregations: Sequence[Aggregation]
    groups: dict[tuple[Value, ...], list[_State]] = field(default_factory=dict)

    def add(self, key: tuple[Value, ...], metrics: Sequence[Value]) -> None:
        """Fold one raw row: its dimension values and its metric values."""
        states = self.groups.get(key)
        if states is None:
            states = self.groups[key] = [_State() for _ in self.aggregations]
        for state, value in zip(states, metrics, strict=True):
            state.add(value)

    def __len__(self) -> int:
        return len(self.groups)

    def rows(self) -> Iterator[Row]:
        """The aggregated rows, in the order their groups were first seen."""
        aggregations = self.aggregations
        for key, states in self.groups.items():
            yield tuple(
                key[i] if kind == "dim" else states[i].result(aggregations[i])
                for kind, i in self.layout
            )
