"""Building the data sources of a server: the demo ones and those of the sources file."""

from __future__ import annotations

from querybatch.connectors.demo import demo_sources
from querybatch.connectors.registry import SourceRegistry
from querybatch.settings import Settings


def build_sources(settings: Settings) -> SourceRegistry:
    """The data sources this server offers, from its settings."""
    sources = {}
    if settings.demo_sources:
        sources.update(
            demo_sources(
                latency_ms=settings.demo_latency_ms,
                fail_accounts=settings.demo_fail_accounts,
                rows_per_day=settings.demo_rows_per_day,
            )
        )
    return SourceRegistry(sources)
