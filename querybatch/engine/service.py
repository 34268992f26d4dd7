"""The engine of one node: its scheduler and executor, started and stopped, and callbacks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from querybatch import logs
from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.callback_policy import CallbackAllow
from querybatch.engine.batch_packs import Packer
from querybatch.engine.batch_storing import BatchStoring
from querybatch.engine.callback_targets import CallbackTargets
from querybatch.engine.callbacks import CallbackSender
from querybatch.engine.executors.base import Executor
from querybatch.engine.expiry import ORPHAN_GRACE, Expiry
from querybatch.engine.leader import Leadership
from querybatch.engine.planner import Planner
from querybatch.engine.scheduler import Background, Scheduler, SchedulerSettings
from querybatch.engine.waiters import Waiters
from querybatch.errors import ConfigurationError
from querybatch.settings import Settings
from querybatch.store.records import WorkItem
from querybatch.store.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the tenant (account) and the key."""

    account: str
    key_id: str


class Engine:
    """Owns the scheduler and the executor of this node."""

    def __init__(
        self, settings: Settings, store: Store, sources: SourceRegistry, executor: Executor
    ) -> None:
        self.settings = settings
        self.store = store
        self.sources = sources
        self.planner = Planner(sources)
        self.waiters = Waiters()
        self.executor = executor
        # Runs of an earlier embedded process that left chunks behind cannot finish any more;
        # scaled out, a worker may still be running them, so they get the whole grace.
        self.expiry = Expiry(
            store,
            ORPHAN_GRACE,
            orphans_before=time.time() if executor.in_process else 0.0,
            busy=lambda: self.at_work(),
        )
        self.scheduler = Scheduler(
            store,
            executor,
            SchedulerSettings(
                account_concurrency=settings.account_concurrency,
                lease_seconds=settings.lease_seconds,
                claim_lease_seconds=(
                    settings.lease_seconds if executor.in_process else settings.queued_lease_seconds
                ),
                tick_seconds=settings.tick_seconds,
                sweep_seconds=settings.sweep_seconds,
                max_attempts=settings.retries + 1,
            ),
            self.notify_stopped,
            Leadership(store.db) if executor.scale_out else None,
            expiry=self.expiry,
        )
        if settings.download_packs:
            self.scheduler.packing = Packer(
                store, settings.sweep_seconds, busy=lambda: self.at_work()
            )
        self.batch_storing = BatchStoring(
            store, settings.batch_store_slice, self.scheduler.wake, alone=not executor.scale_out
        )
        self.scheduler.batch_storing = self.batch_storing
        self._loop_task: asyncio.Task[None] | None = None
        self._callback_task: asyncio.Task[None] | None = None
        self._batches_stopped = asyncio.Event()
        self._stop_listeners: list[Callable[[list[str]], None]] = []
        self.callbacks: CallbackSender | None = None
        try:
            allow = CallbackAllow.parse(settings.callback_allow)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.callback_targets = CallbackTargets(allow)

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover from a previous run of this node, then start scheduling."""
        await self.executor.recover(self.store, max_attempts=self.settings.retries + 1)
        secret = await self.store.keys.server_secret(self.settings.secret)
        self.callbacks = CallbackSender(self.store, secret, self.callback_targets)
        await self.executor.start(self._runs_ended, self.notify_stopped)
        self._loop_task = asyncio.create_task(self.scheduler.run(), name="qb-scheduler")
        self._callback_task = asyncio.create_task(self._callbacks_forever(), name="qb-callbacks")

    async def stop(self) -> None:
        """Stop scheduling and running; unfinished sub-queries run again at the next start."""
        self.scheduler.stop()
        if self._loop_task is not None:
            await self._loop_task
        if self.scheduler.transfer_runs is not None:
            await self.scheduler.transfer_runs.stop()
        await self.expiry.stop()
        if self.scheduler.packing is not None:
            await self.scheduler.packing.stop()
        await self.batch_storing.stop()
        if self._callback_task is not None:
            self._callback_task.cancel()
            await asyncio.gather(self._callback_task, return_exceptions=True)
        if self.callbacks is not None:
            await self.callbacks.close()
        await self.executor.stop()
        await self.scheduler.settle()  # claims under way land before the store closes

    def use_transfer_runs(self, runner: Background) -> None:
        """Have the scheduler start ``runner``'s passes on its ticks while this node leads."""
        self.scheduler.transfer_runs = runner

    def leads(self) -> bool:
        """Whether this node schedules (always, on the embedded default)."""
        leadership = self.scheduler.leadership
        return leadership is None or leadership.leader

    def at_work(self) -> bool:
        """Whether this node's event loop has work on it: batches to schedule here, or
        sub-queries running in this process."""
        return bool(self.scheduler.lanes) or bool(self.executor.running())

    def today(self) -> date:
        """Today in the server's time zone (relative dates resolve against it)."""
        return datetime.now(ZoneInfo(self.settings.timezone)).date()

    def listen_stopped(self, listener: Callable[[list[str]], None]) -> None:
        """Have ``listener`` called (on the loop) with the batches that stop on this node."""
        self._stop_listeners.append(listener)

    def notify_stopped(self, batch_ids: list[str]) -> None:
        """These batches stopped: wake whoever waits for them, and send their callbacks."""
        for listener in self._stop_listeners:
            listener(batch_ids)
        self.waiters.notify(batch_ids)
        self._batches_stopped.set()
        if self.scheduler.transfer_runs is not None:
            self.scheduler.transfer_runs.poke()  # a transfer run's batch may be among them
        if self.scheduler.packing is not None:
            self.scheduler.packing.poke()

    # -- internals --------------------------------------------------------------------------

    def _runs_ended(self, items: Sequence[WorkItem]) -> None:
        """Runs ended: the scheduler frees their slots, and whoever waits for one of their
        batches looks again (scaled out, the worker's commit stops a batch, not this node)."""
        self.scheduler.on_done(items)
        if not self.executor.in_process:
            self.waiters.look_again(item.batch_id for item in items)

    async def _callbacks_forever(self) -> None:
        """Send callbacks as batches stop here, and every second for those stopped elsewhere."""
        assert self.callbacks is not None
        while True:
            try:
                await asyncio.wait_for(self._batches_stopped.wait(), 1.0)
            except TimeoutError:
                pass
            self._batches_stopped.clear()
            try:
                await self.callbacks.send_pending()
            except Exception as exc:
                logs.retrying(log, "sending batch callbacks failed", exc)
