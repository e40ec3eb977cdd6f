"""Everything one operator process shares between handlers: settings, the API, wake-ups and
metrics; and the loops the kopf handlers delegate to."""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from kubemigrate.controller.flows.migration import Context, MigrationFlow
from kubemigrate.controller.kube.api import KubeApi
from kubemigrate.controller.metrics import Metrics
from kubemigrate.controller.ordering.migrations import DatabaseKey, Peer, next_up, peer_of
from kubemigrate.controller.ordering.wakeups import Wakeups
from kubemigrate.settings import Settings

PeerIndex = Mapping[DatabaseKey, Collection[Peer]]
SETTLED_PHASES = frozenset({"Succeeded", "RolledBack", "DryRunSucceeded", "Failed"})


@dataclass
class Runtime:
    """The operator's shared state, kept in kopf's memo."""

    settings: Settings
    api: KubeApi
    wakeups: Wakeups = field(default_factory=Wakeups)
    metrics: Metrics = field(default_factory=Metrics)

    def wake_next(self, database: DatabaseKey, peers: Iterable[Peer]) -> None:
        """Wake the migrations of database that may be able to move now."""
        for peer in next_up(peers):
            self.wakeups.wake(peer.uid)

    def on_migration_event(self, body: Mapping[str, Any], index: PeerIndex) -> None:
        """A Migration changed: wake it if its spec changed, and its queue if it settled."""
        me = peer_of(body)
        peers = list(index.get(me.database, ()))
        if not me.settled:
            self.wakeups.wake(me.uid)
        elif me.phase in SETTLED_PHASES:
            self.wake_next(me.database, peers)
        self.metrics.set_pending(me.database.namespace, me.database.secret, peers)

    def on_job_event(self, body: Mapping[str, Any]) -> None:
        """A Job of ours changed: wake the resource that owns it."""
        for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("controller"):
                self.wakeups.wake(str(ref.get("uid")))

    async def run_migration(self, body: kopf.Body, stopped: kopf.DaemonStopped,
                            index: PeerIndex, logger: kopf.Logger) -> None:
        """The daemon of one Migration: step, sleep until woken or due, repeat until stopped."""
        flow = MigrationFlow(self.settings)
        uid = body["metadata"]["uid"]
        namespace = body["metadata"]["namespace"]

        def emit(kind: str, reason: str, message: str) -> None:
            kopf.event(body, type=kind, reason=reason, message=message)

        def settle(me: Peer) -> None:
            peers = [p for p in index.get(me.database, ()) if p.uid != me.uid]
            self.wake_next(me.database, [*peers, me])

        try:
            while not stopped:
                me = peer_of(body)
                ctx = Context(self.api, self.settings, emit, settle,
                              list(index.get(me.database, ())),
                              logger=logger,
                              observe=self.metrics.observer(namespace))
                try:
                    delay = await flow.step(body, ctx)
                except Exception:  # a bug or an API hiccup: log, back off, try again
                    logger.exception("reconciling failed; retrying")
                    delay = flow.backoff.next()
                wait: Awaitable[object] = stopped.wait()
                await self.wakeups.sleep(uid, delay, wait)
        finally:
            self.wakeups.forget(uid)
