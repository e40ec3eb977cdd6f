"""Engine runs in flight, so that deleting their object can stop them.

A Migration's apply, dry run or rollback runs in a worker thread, which nothing can interrupt:
when kopf cancels the Migration's daemon (the object is being deleted) the thread goes on and
would commit after the object is gone. So each run is registered here under its object's uid
with a way to cancel its statement on the server; the daemon's cancellation leaves the run here
(`abandoned`), and the deletion handler takes it, cancels its statement until the run ends
(`stop`), and reports how it ended before kopf releases the finalizer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubemigrate.engine import RunReport

T = TypeVar("T")

STOP_WITHIN = 20.0
"""Seconds the deletion handler keeps cancelling a run before it gives up and lets go."""
CANCEL_EVERY = 0.25
"""Seconds between two cancels: one that arrives between statements cancels nothing."""


@dataclass
class Run:
    """One engine call in a worker thread: what it is, its outcome, and how to cancel it."""

    what: str
    """e.g. "apply of version 1", for the Event."""
    future: asyncio.Future[Any]
    cancel: Callable[[], int]
    """Cancel the run's statement on the server (blocking; run in a thread)."""
    transactional: bool = True
    cancelled: str = "ApplyCancelled"
    """The Event reason when the deletion cancelled it."""
    abandoned: bool = False
    """The daemon that awaited it was cancelled: its outcome is the deletion handler's."""


class InFlight:
    """The runs of one operator process, by object uid."""

    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}

    async def run(
        self,
        uid: str,
        what: str,
        call: Callable[[], T],
        cancel: Callable[[], int],
        *,
        transactional: bool = True,
        cancelled: str = "ApplyCancelled",
    ) -> T:
        """call() in a worker thread, registered for uid until it returns to its caller."""
        future: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(call))
        run = Run(what, future, cancel, transactional, cancelled)
        self._runs[uid] = run
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            run.abandoned = True
            raise
        finally:
            if not run.abandoned and self._runs.get(uid) is run:
                del self._runs[uid]

    def take(self, uid: str) -> Run | None:
        """The run of uid still in flight (or finished unseen), removed from the registry."""
        return self._runs.pop(uid, None)


async def stop(run: Run, *, within: float = STOP_WITHIN, every: float = CANCEL_EVERY) -> bool:
    """Cancel run's statement until the run ends; whether it ended within the bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not run.future.done() and loop.time() < deadline:
        # An unreachable database fails the run too; keep waiting for it to end.
        with contextlib.suppress(Exception):
            await asyncio.to_thread(run.cancel)
        await asyncio.wait({run.future}, timeout=every)
    return run.future.done()


def outcome(run: Run) -> tuple[str, str, str]:
    """(Event type, reason, message) for how a run stopped by a deletion ended. Never the
    exception's text: it may come from a connection string."""
    if not run.future.done():
        return (
            "Warning",
            "ApplyNotStopped",
            f"the {run.what} was still running {STOP_WITHIN:.0f}s after it was cancelled; "
            "the database's history table records how it ended",
        )
    error = run.future.exception()
    if error is not None:
        return (
            "Normal",
            run.cancelled,
            f"the {run.what} was stopped by the deletion ({type(error).__name__}); "
            "its transaction was rolled back, nothing was committed",
        )
    report: RunReport = run.future.result()
    result = report.results[0] if report.results else None
    if result is None:
        return ("Normal", run.cancelled, f"the {run.what} had nothing to do")
    if result.ok:
        return (
            "Warning",
            "CommittedBeforeDeletion",
            f"the {run.what} committed before the deletion could cancel it: it is applied "
            "in the database",
        )
    kept = (
        "its transaction was rolled back, nothing was committed"
        if run.transactional
        else f"statements before statement {result.statement_index} stay applied "
        "(transactional: false)"
    )
    if result.batches is not None:  # a batched step: what committed stays, with its checkpoint
        kept = (
            f"the running batch was rolled back; the committed batches stay, and the next"
            f" apply resumes after them (statement {result.statement_index})"
        )
    return (
        "Normal",
        run.cancelled,
        f"the {run.what} was cancelled by the deletion (SQLSTATE {result.sqlstate}); {kept}",
    )
