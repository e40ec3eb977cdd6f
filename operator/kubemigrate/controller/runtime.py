"""Everything one operator process shares between handlers (settings, the API, wake-ups and
metrics, kept in kopf's memo), and the hooks the event and deletion handlers delegate to.

A Job event wakes the object that owns it; a Migration that settles wakes the next of its
database; a backup that finishes wakes the next backup of its database; a backup or restore
that changes wakes the Migration that owns it (a pre-migration backup, a rollback's restore).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from kubemigrate.controller.build.labels import label_value
from kubemigrate.controller.flows import cleanup, inflight
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.flows.inflight import InFlight
from kubemigrate.controller.kube.api import KubeApi
from kubemigrate.controller.metrics import Metrics
from kubemigrate.controller.ordering.backups import BackupIndex, backup_peer_of
from kubemigrate.controller.ordering.migrations import (
    Peer,
    PeerIndex,
    next_up,
    peer_of,
    waiting_on,
)
from kubemigrate.controller.ordering.wakeups import Wakeups
from kubemigrate.models import GROUP
from kubemigrate.models.migration import MigrationPhase
from kubemigrate.settings import Settings

SETTLED_PHASES = frozenset(
    {
        MigrationPhase.SUCCEEDED,
        MigrationPhase.ROLLED_BACK,
        MigrationPhase.DRY_RUN_SUCCEEDED,
        MigrationPhase.FAILED,
    }
)


@dataclass
class Runtime:
    """The operator's shared state, kept in kopf's memo."""

    settings: Settings
    api: KubeApi
    wakeups: Wakeups = field(default_factory=Wakeups)
    metrics: Metrics = field(default_factory=Metrics)
    inflight: InFlight = field(default_factory=InFlight)

    def context(self, body: kopf.Body, logger: kopf.Logger) -> StepContext:
        """A flow step's view of the world, posting Events about body."""

        def emit(kind: str, reason: str, message: str) -> None:
            kopf.event(body, type=kind, reason=reason, message=message)

        return StepContext(
            self.api,
            self.settings,
            emit,
            self.metrics,
            logger=logger,
            wake=self.wakeups.wake,
            inflight=self.inflight,
        )

    # -- events ----------------------------------------------------------------------------

    def wake_next(self, peers: Iterable[Peer]) -> None:
        """Wake the migrations of one database that may be able to move now."""
        for peer in next_up(peers):
            self.wakeups.wake(peer.uid)

    def on_migration_event(self, body: Mapping[str, Any], index: PeerIndex) -> None:
        """A Migration changed: wake it if its spec changed, its queue if it settled, and
        those waiting for it whatever its phase (their Pending message names it)."""
        me = peer_of(body)
        peers = list(index.get(me.database, ()))
        if not me.settled:
            self.wakeups.wake(me.uid)
        elif me.phase in SETTLED_PHASES:
            self.wake_next(peers)
        for waiter in waiting_on(me, index):
            self.wakeups.wake(waiter.uid)
        self.metrics.set_pending(me.database.namespace, me.database.secret, peers)

    def on_job_event(self, body: Mapping[str, Any]) -> None:
        """A Job of ours changed: wake the resource that owns it."""
        for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("controller"):
                self.wakeups.wake(str(ref.get("uid")))

    def on_backup_event(self, body: Mapping[str, Any], index: BackupIndex) -> None:
        """Wake the backup itself while it works, the next in line once it is done, and the
        Migration waiting for it."""
        me = backup_peer_of(body)
        if me.done:
            for peer in index.get(me.database, ()):
                if not peer.done and peer.uid != me.uid:
                    self.wakeups.wake(peer.uid)
        else:
            self.wakeups.wake(me.uid)
        self._wake_owners(body)

    def on_set_event(self, body: Mapping[str, Any]) -> None:
        """A MigrationSet changed: wake it when its spec did (its own status writes do not)."""
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        if meta.get("generation") != status.get("observedGeneration"):
            self.wakeups.wake(str(meta.get("uid")))

    def on_restore_event(self, body: Mapping[str, Any]) -> None:
        self._wake_owners(body)

    def _wake_owners(self, body: Mapping[str, Any]) -> None:
        for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
            self.wakeups.wake(str(ref.get("uid")))

    # -- deletions -------------------------------------------------------------------------

    async def migration_deleted(self, body: kopf.Body, logger: kopf.Logger) -> None:
        """The database and its history stay as they are; only the Migration's Jobs go. A run
        still in flight is cancelled and rolled back first, and how it ended is posted (and
        logged: in a namespace being deleted, the Event cannot be)."""
        meta = body["metadata"]
        run = self.inflight.take(meta["uid"])
        if run is not None:
            await inflight.stop(run)
            kind, reason, message = inflight.outcome(run)
            logger.warning("%s: %s", reason, message)
            kopf.event(body, type=kind, reason=reason, message=message)
        selector = f"{GROUP}/migration={label_value(meta['name'])}"
        await self.api.delete_jobs(meta["namespace"], selector)

    async def backup_deleted(self, body: kopf.Body, logger: kopf.Logger) -> None:
        """A backup's file goes with it (see `flows.cleanup`)."""
        await cleanup.delete_backup_file(body, self.context(body, logger))
