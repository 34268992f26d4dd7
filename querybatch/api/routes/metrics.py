"""``/metrics``: Prometheus metrics of the whole deployment (read from the shared store)."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from querybatch.api.deps import ServicesDep

router = APIRouter(tags=["Operations"])


class _Snapshot(Collector):
    """Metrics read once per scrape, handed to prometheus_client for rendering."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


@router.get("/metrics", name="metrics", operation_id="metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Queue depth, running sub-queries, and sub-queries finished per data source and status."""
    upkeep = services.store.upkeep
    waiting, running, active = await upkeep.queue_totals()
    totals = await upkeep.source_totals()

    def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, value=value)

    finished = CounterMetricFamily(
        "querybatch_subqueries_finished",
        "Sub-queries that ended, per data source and status (throughput and failures)",
        labels=["ds_id", "status"],
    )
    seconds = CounterMetricFamily(
        "querybatch_subquery_run_seconds",
        "Seconds spent running successful sub-queries, per data source",
        labels=["ds_id", "status"],
    )
    for ds_id, status, count, spent in totals:
        finished.add_metric([ds_id, status], count)
        seconds.add_metric([ds_id, status], spent)
    engine = services.engine
    snapshot = [
        gauge(
            "querybatch_subqueries_waiting",
            "Sub-queries scheduled or queued (queue depth)",
            waiting,
        ),
        gauge("querybatch_subqueries_running", "Sub-queries running now", running),
        gauge("querybatch_batches_active", "Batches (and single queries) not stopped", active),
        gauge(
            "querybatch_node_in_flight",
            "Sub-queries this node has handed to its executor and not seen end",
            sum(engine.scheduler.tenant_in_flight.values()),
        ),
        gauge(
            "querybatch_node_leader",
            "1 if this node schedules for the deployment",
            1.0 if engine.leads() else 0.0,
        ),
        finished,
        seconds,
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snapshot))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
