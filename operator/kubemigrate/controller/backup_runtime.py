"""The loops and hooks the DatabaseBackup and DatabaseRestore handlers delegate to.

They share the operator's `Runtime` (API, settings, wake-ups, metrics): a Job event wakes the
backup or restore that owns it, and a backup or restore that changes wakes the Migration that
owns it (a pre-migration backup, a rollback's restore) and the next backup of its database.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from kubemigrate.controller.build import preflight
from kubemigrate.controller.build.backup_jobs import (
    cleanup_owner,
    cleanup_request,
    parse_location,
    place_of,
)
from kubemigrate.controller.build.jobs import build_job
from kubemigrate.controller.flows.backup import BackupFlow
from kubemigrate.controller.flows.base import FlowContext, ResourceFlow
from kubemigrate.controller.flows.migration import Backoff
from kubemigrate.controller.flows.restore import RestoreFlow
from kubemigrate.controller.ordering.backups import BackupKey, BackupPeer, backup_peer_of
from kubemigrate.controller.runtime import Runtime
from kubemigrate.models.backup import DatabaseBackupSpec

BackupIndex = Mapping[BackupKey, Collection[BackupPeer]]
FINISHED_POD_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass
class BackupRuntime:
    """Backup and restore daemons, wake-ups and the file cleanup on deletion."""

    runtime: Runtime

    def _wake_owners(self, body: Mapping[str, Any]) -> None:
        for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
            self.runtime.wakeups.wake(str(ref.get("uid")))

    def on_backup_event(self, body: Mapping[str, Any], index: BackupIndex) -> None:
        """Wake the backup itself while it works, the next in line once it is done, and the
        Migration waiting for it."""
        me = backup_peer_of(body)
        if me.done:
            for peer in index.get(me.database, ()):
                if not peer.done and peer.uid != me.uid:
                    self.runtime.wakeups.wake(peer.uid)
        else:
            self.runtime.wakeups.wake(me.uid)
        self._wake_owners(body)

    def on_restore_event(self, body: Mapping[str, Any]) -> None:
        self._wake_owners(body)

    def _context(self, body: kopf.Body, logger: kopf.Logger) -> FlowContext:
        def emit(kind: str, reason: str, message: str) -> None:
            kopf.event(body, type=kind, reason=reason, message=message)

        return FlowContext(self.runtime.api, self.runtime.settings, emit, self.runtime.metrics,
                           logger=logger, wake=self.runtime.wakeups.wake)

    def _backoff(self) -> Backoff:
        settings = self.runtime.settings
        return Backoff(settings.retry_min_seconds, settings.retry_max_seconds)

    async def run_backup(self, body: kopf.Body, stopped: kopf.DaemonStopped,
                         index: BackupIndex, logger: kopf.Logger) -> None:
        flow = BackupFlow(self._backoff())
        ctx = self._context(body, logger)

        async def step() -> float:
            me = backup_peer_of(body)
            return await flow.step(body, ctx, list(index.get(me.database, ())))

        await self._loop(body, stopped, logger, flow, step)

    async def run_restore(self, body: kopf.Body, stopped: kopf.DaemonStopped,
                          logger: kopf.Logger) -> None:
        flow = RestoreFlow(self._backoff())
        ctx = self._context(body, logger)

        async def step() -> float:
            return await flow.step(body, ctx)

        await self._loop(body, stopped, logger, flow, step)

    async def _loop(self, body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger,
                    flow: ResourceFlow, step: Any) -> None:
        """Step, sleep until woken or due, repeat until stopped (as Migration's daemon does)."""
        uid = body["metadata"]["uid"]
        backoff = self._backoff()
        try:
            while not stopped:
                try:
                    delay = float(await step())
                except Exception:  # a bug or an API hiccup: log, back off, try again
                    logger.exception("reconciling %s failed; retrying", flow.plural)
                    delay = backoff.next()
                await self.runtime.wakeups.sleep(uid, delay, stopped.wait())
        finally:
            self.runtime.wakeups.forget(uid)

    async def backup_deleted(self, body: kopf.Body, logger: kopf.Logger) -> None:
        """Remove the backup's file before the resource goes: stop its Job, then run a cleanup
        Job and wait for it (kopf retries this handler; its finalizer holds the resource)."""
        meta, raw = body["metadata"], body.get("status") or {}
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        api = self.runtime.api
        if not raw.get("job"):
            return  # no Job ever ran: there is no file
        await api.delete_job(ns, raw["job"])
        pods = await api.job_pods(ns, raw["job"])
        if any((p.get("status") or {}).get("phase") not in FINISHED_POD_PHASES for p in pods):
            raise kopf.TemporaryError("waiting for the backup Job's pod to stop", delay=1)
        place = parse_location(raw.get("location")) or place_of(
            DatabaseBackupSpec.model_validate(body.get("spec") or {}), ns, name, uid)
        if not await api.pvc_exists(ns, place.claim):
            logger.info("PersistentVolumeClaim %s is gone, and %s with it", place.claim,
                        place.location)
            return
        manifest = build_job(cleanup_owner(name, ns, uid), cleanup_request(place),
                             self.runtime.settings)
        try:
            job = await api.ensure_job(manifest)
        except ApiException as e:
            if e.status == 403:  # the namespace is being deleted, and its volumes with it
                logger.warning("cannot start the cleanup Job of %s: %s", place.location,
                               e.reason)
                return
            raise
        finished = preflight.job_finished(job)
        if finished is None:
            raise kopf.TemporaryError(f"waiting for cleanup Job {manifest['metadata']['name']}",
                                      delay=1)
        if not finished:
            raise kopf.PermanentError(f"could not delete {place.location}: "
                                      f"{preflight.job_failure(job)}")
        kopf.event(body, type="Normal", reason="BackupFileDeleted",
                   message=f"Deleted {place.location}")
