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
    """Queue depth, running sub-queries, alive workers, and sub-queries finished per data
    source and status."""
    figures = await services.operations.figures()
    polls = services.poll_budget

    def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, value=value)

    def counter(name: str, text: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(name, text, value=value)

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
    for total in figures.finished:
        finished.add_metric([total.ds_id, total.status], total.finished)
        seconds.add_metric([total.ds_id, total.status], total.run_seconds)
    snapshot = [
        gauge(
            "querybatch_subqueries_waiting",
            "Sub-queries scheduled or queued (queue depth)",
            figures.waiting,
        ),
        gauge("querybatch_subqueries_running", "Sub-queries running now", figures.running),
        gauge(
            "querybatch_batches_active",
            "Batches (and single queries) not stopped",
            figures.active_batches,
        ),
        gauge(
            "querybatch_node_in_flight",
            "Sub-queries this node has handed to its executor and not seen end",
            figures.node_in_flight,
        ),
        gauge(
            "querybatch_node_leader",
            "1 if this node schedules for the deployment",
            1.0 if figures.node_leads else 0.0,
        ),
        gauge(
            "querybatch_workers_alive",
            "Worker processes alive (heartbeat seen lately; the slots of an embedded server)",
            figures.workers.alive,
        ),
        finished,
        seconds,
        counter(
            "querybatch_node_polls",
            "Polls this node answered in its poll lane (status, batch and status pages)",
            polls.polls,
        ),
        counter(
            "querybatch_node_poll_cpu_seconds",
            "CPU seconds this node spent answering polls",
            polls.cpu_seconds,
        ),
        counter(
            "querybatch_node_polls_held",
            "Polls held back because polls had used their share of the event loop",
            polls.held,
        ),
        counter(
            "querybatch_node_poll_held_seconds",
            "Seconds polls were held back for the engine's sake",
            polls.held_seconds,
        ),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snapshot))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
