"""A fleet wave's ledger ConfigMap, changed by many workers at once without losing a change.

Each change is a read, a pure step of ``fleetledger`` and a replace with the resourceVersion
read: the API server refuses a replace of a stale version (409), and the worker then reads again
and redoes its step on the fresh ledger, after a short random sleep so that colliding workers
spread out. Claiming and the halt check are one such change, so no target is claimed twice and
none is started once the wave has halted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from kubemigrate import fleetledger
from kubemigrate.cli.incluster import ApiError, InCluster, object_path
from kubemigrate.fleetledger import Ledger, TargetError

T = TypeVar("T")
CONFLICTS = 100
"""Conflicting replaces a change survives before the worker gives up."""


class LedgerStore:
    """One ledger ConfigMap, and the two changes a worker makes to it."""

    def __init__(self, api: InCluster, namespace: str, name: str) -> None:
        self.api = api
        self.path = object_path(namespace, "configmaps", name)
        self.stopped: str | None = None
        """Why the last claim found nothing to do (``fleetledger.stop_reason``)."""

    def claim(self, total: int) -> int | None:
        """The index of the target this worker runs next, or None (``stopped`` says why)."""

        def step(ledger: Ledger) -> tuple[Ledger, int] | None:
            self.stopped = fleetledger.stop_reason(ledger, total)
            return fleetledger.claim(ledger, total)

        return self._change(step)

    def record(
        self,
        index: int,
        *,
        name: str,
        ok: bool,
        version: str | None,
        rows: int,
        error: TargetError | None,
    ) -> None:
        """Target index finished; recording it twice counts it once."""

        def step(ledger: Ledger) -> tuple[Ledger, None] | None:
            after = fleetledger.record(
                ledger, index, name=name, ok=ok, version=version, rows=rows, error=error
            )
            return None if after == ledger else (after, None)

        self._change(step)

    def _change(self, step: Callable[[Ledger], tuple[Ledger, T] | None]) -> T | None:
        for attempt in range(CONFLICTS):
            found = self.api.get(self.path)
            data = found.get("data") or {}
            changed = step(fleetledger.read_ledger(data))
            if changed is None:
                return None
            found["data"] = {**data, **fleetledger.ledger_data(changed[0])}
            try:
                self.api.put(self.path, found)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                time.sleep(random.uniform(0.01, 0.05 + 0.01 * min(attempt, 20)))  # noqa: S311
                continue
            return changed[1]
        raise ApiError(409, f"the ledger changed under every one of {CONFLICTS} tries")
