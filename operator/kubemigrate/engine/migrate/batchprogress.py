"""Progress of a batched statement, as the engine reports it to its front ends.

Pure data and arithmetic: the CLI draws it, the operator copies it into status and metrics.
The estimate is of the rows still to do when the statement (re)starts (the ``estimate=`` query,
else the planner's), added to the rows the checkpoint says are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

BatchState = Literal["running", "paused", "lagging", "done"]
"""``paused``: asked to (``spec.paused``); ``lagging``: waiting for replication lag to drop."""


@dataclass(frozen=True)
class BatchProgress:
    """Where one batched statement stands, after a batch or while it waits."""

    version: str
    kind: str
    statement: int
    """The statement's number in its migration."""
    line: int
    state: BatchState
    batches: int
    """Batches committed (counting those of earlier runs the checkpoint holds)."""
    rows: int
    """Rows the committed batches changed."""
    batch_size: int
    estimate: int | None
    """Rows in all, estimated; None when unknown."""
    estimate_source: str | None
    """``query`` (the marker's ``estimate=``) or ``planner``."""
    rate: float | None
    """Rows per second in this run."""
    eta_seconds: float | None
    last_batch_seconds: float | None = None
    resumed_batches: int = 0
    """Batches the checkpoint held when this run started (not run again)."""
    detail: str | None = None
    """Why it waits (``lagging``)."""

    @property
    def fraction(self) -> float | None:
        """rows / estimate, at most 1; None without an estimate."""
        if not self.estimate:
            return None
        return min(1.0, self.rows / self.estimate)


BatchCallback = Callable[[BatchProgress], None]
PauseCheck = Callable[[], bool]


@dataclass
class Meter:
    """Rows and time of this run, for the rate and the ETA."""

    rows_before: int
    estimate_left: int | None
    started: float = field(default_factory=time.monotonic)
    rows_now: int = 0

    @property
    def total(self) -> int | None:
        if self.estimate_left is None:
            return None
        return max(self.rows_before + self.estimate_left, self.rows_before + self.rows_now)

    def rate(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if elapsed <= 0 or self.rows_now <= 0:
            return None
        return self.rows_now / elapsed

    def eta(self, *, done: bool = False) -> float | None:
        if done:
            return 0.0
        rate, total = self.rate(), self.total
        if rate is None or total is None:
            return None
        return max(0.0, (total - self.rows_before - self.rows_now) / rate)
