"""A running batched step seen from the operator: its progress in the Migration's status and
metrics, and ``spec.paused`` read before every batch.

The engine reports each batch from its worker thread. Metrics are set at once; status is
written from the event loop, at most every ``STATUS_EVERY`` seconds or when the state changes
(paused, lagging, done), so a backfill of thousands of batches does not flood the API server.
``spec.paused`` is read from the body kopf keeps up to date for the daemon, so pausing costs no
API call per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from kubemigrate.controller.build.batch_status import batch_status
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.flows.migration_status import MigrationStatusWriter
from kubemigrate.engine import BatchProgress
from kubemigrate.models.migration import MigrationPhase

STATUS_EVERY = 5.0
"""Seconds between two status writes of a running batched step (a state change is at once)."""


class OperatorStopping(Exception):
    """Raised into the engine's thread to end a batched step when the operator exits."""


class BatchWatch:
    """The ``on_batch`` and ``paused`` hooks of one engine run of one Migration."""

    def __init__(
        self,
        writer: MigrationStatusWriter,
        obj: dict[str, Any],
        ctx: StepContext,
        live: Mapping[str, Any],
        *,
        phase: MigrationPhase,
        verb: str,
        version: str,
    ) -> None:
        self.writer, self.obj, self.ctx, self.live = writer, obj, ctx, live
        self.phase, self.verb, self.version = phase, verb, version
        self.loop = asyncio.get_running_loop()
        self._state: str | None = None
        self._written = 0.0
        self._pending: Future[None] | None = None

    def paused(self) -> bool:
        """Whether the Migration asks its batched step to pause (called in the engine's thread
        before every batch). Never while the Migration is being deleted: the deletion handler
        then cancels the running batch, and a paused step would hold the lock past it. Raises
        once the operator's event loop has stopped (the process is exiting): the step stops at
        this batch boundary, its checkpoint kept, instead of keeping the process alive."""
        if self.loop.is_closed() or not self.loop.is_running():
            raise OperatorStopping("the operator is stopping; the next run resumes the step")
        if (self.live.get("metadata") or {}).get("deletionTimestamp"):
            return False
        spec = self.live.get("spec") or {}
        return bool(spec.get("paused"))

    def on_batch(self, progress: BatchProgress) -> None:
        """Called in the engine's thread after each batch and while waiting."""
        meta = self.obj["metadata"]
        self.ctx.metrics.batch(meta["namespace"], meta["name"], progress)
        changed = progress.state != self._state
        due = time.monotonic() - self._written >= STATUS_EVERY
        busy = self._pending is not None and not self._pending.done()
        if not changed and (not due or busy):
            return
        previous, self._state, self._written = self._state, progress.state, time.monotonic()
        self._pending = asyncio.run_coroutine_threadsafe(self._write(progress, previous), self.loop)

    async def settle(self) -> None:
        """Wait for a progress write still in flight, so that none lands after the run's
        final status."""
        pending = self._pending
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(pending)

    async def _write(self, progress: BatchProgress, previous: str | None) -> None:
        change = batch_status(progress, self.phase, self.verb, self.version)
        try:
            await self.writer.write(self.obj, self.ctx, change)
        except Exception as exc:  # progress is best effort; the run goes on
            self.ctx.logger.warning("could not write batch progress: %s", exc)
        if progress.state == "paused" and previous != "paused":
            self.ctx.emit("Normal", "Paused", change.message or "paused")
        elif previous == "paused" and progress.state != "paused":
            self.ctx.emit("Normal", "Resumed", change.message or "resumed")
