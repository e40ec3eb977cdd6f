"""One DatabaseRestore: wait for its backup, run the restore Job once, report what arrived.

The Job runs ``kubemigrate restore``, which refuses a target that is not empty unless the spec
asks for ``clean`` and restores in one transaction, so a refused or failed restore leaves the
target as it was; the refusal's reason (TargetNotEmpty) becomes the resource's. Afterwards the
Job counts every table and compares with the counts the backup recorded: status.verification.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from kubemigrate.controller.build import preflight
from kubemigrate.controller.build.backup_jobs import (
    RESTORE,
    parse_location,
    read_outcome,
    restore_fields,
    restore_request,
)
from kubemigrate.controller.build.jobs import Owner, build_job, job_name
from kubemigrate.controller.build.status import rfc3339
from kubemigrate.controller.flows.base import (
    FlowContext,
    ResourceFlow,
    phase,
    seconds_between,
    utcnow,
)
from kubemigrate.controller.flows.migration import Backoff
from kubemigrate.controller.kube.api import NotFound
from kubemigrate.models.common import DatabaseRef
from kubemigrate.models.restore import DatabaseRestoreSpec

PLURAL = "databaserestores"
IDLE = 300.0
JOB_POLL = 2.0
TERMINAL = frozenset({"Succeeded", "Failed"})


class RestoreFlow(ResourceFlow):
    """The state machine of one DatabaseRestore (one instance per daemon)."""

    plural = PLURAL

    def __init__(self, backoff: Backoff) -> None:
        super().__init__()
        self.backoff = backoff

    async def step(self, body: Mapping[str, Any], ctx: FlowContext) -> float:
        obj = self._freshest(body)
        raw = obj.get("status") or {}
        if raw.get("phase") in TERMINAL:
            return IDLE
        try:
            spec = DatabaseRestoreSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            return await self._fail(obj, ctx, "InvalidSpec", f"invalid spec: {exc.errors()[0]}")
        if raw.get("phase") != "Running":
            delay = await self._start(obj, spec, ctx)
            if delay is not None:
                return delay
        return await self._follow(obj, spec, ctx)

    async def _start(self, obj: dict[str, Any], spec: DatabaseRestoreSpec,
                     ctx: FlowContext) -> float | None:
        """Move to Running once the backup is usable; else the delay before looking again."""
        meta = obj["metadata"]
        backup_name = spec.backup_ref.name
        backup = await ctx.api.get_custom("databasebackups", meta["namespace"], backup_name)
        if backup is None:
            return await self._retry(obj, ctx, "BackupNotFound",
                                     f"DatabaseBackup {backup_name} not found")
        bstatus = backup.get("status") or {}
        if bstatus.get("phase") == "Failed":
            return await self._fail(obj, ctx, "BackupFailed",
                                    f"DatabaseBackup {backup_name} failed: "
                                    f"{bstatus.get('message', '')}")
        if bstatus.get("phase") != "Succeeded" or parse_location(bstatus.get("location")) is None:
            return await self._retry(obj, ctx, "WaitingForBackup",
                                     f"waiting for DatabaseBackup {backup_name} to succeed "
                                     f"({bstatus.get('phase') or 'Pending'})", warn=False)
        target = self._target(spec, backup)
        try:
            await ctx.api.secret_value(meta["namespace"], target.secret_ref.name,
                                       target.secret_ref.key)
        except NotFound as exc:
            return await self._retry(obj, ctx, "SecretNotFound", str(exc))
        name = job_name(self._owner(obj), RESTORE)
        clean = " (clean: dropping the backed-up objects first)" if spec.clean else ""
        message = (f"restoring backup {backup_name} into the database of Secret "
                   f"{target.secret_ref.name}{clean}")
        await self._write(obj, ctx, phase("Running", "Restoring", message, meta["generation"],
                                          obj.get("status") or {}, startedAt=rfc3339(utcnow()),
                                          job=name, lastError=None))
        ctx.emit("Normal", "RestoreStarted", f"Started restore Job {name}: {message}")
        return None

    async def _follow(self, obj: dict[str, Any], spec: DatabaseRestoreSpec,
                      ctx: FlowContext) -> float:
        meta, raw = obj["metadata"], obj.get("status") or {}
        name = raw.get("job") or job_name(self._owner(obj), RESTORE)
        job = await ctx.api.job(meta["namespace"], name)
        if job is None:
            backup = await ctx.api.get_custom("databasebackups", meta["namespace"],
                                              spec.backup_ref.name)
            place = parse_location(((backup or {}).get("status") or {}).get("location"))
            if backup is None or place is None:
                return await self._fail(obj, ctx, "BackupNotFound",
                                        f"DatabaseBackup {spec.backup_ref.name} is gone")
            target = self._target(spec, backup).secret_ref
            request = restore_request(place, target.name, target.key, clean=spec.clean,
                                      deadline=spec.active_deadline_seconds)
            manifest = build_job(self._owner(obj), request, ctx.settings)
            manifest["metadata"]["name"] = name
            job = await ctx.api.ensure_job(manifest)
        finished = preflight.job_finished(job)
        if finished is None:
            return JOB_POLL
        pods = await ctx.api.job_pods(meta["namespace"], name)
        outcome = read_outcome(preflight.termination_message(pods),
                               None if finished else preflight.job_failure(job))
        fields = restore_fields(outcome)
        if not outcome.ok:
            return await self._fail(obj, ctx, outcome.reason, outcome.message or outcome.reason,
                                    fields)
        ended = utcnow()
        d = outcome.data
        counts = fields.get("verification") or {}
        message = (f"restored backup {spec.backup_ref.name} into database "
                   f"{d.get('database', '?')}: {counts.get('tables', 0)} tables, "
                   f"{counts.get('rows', 0)} rows"
                   + (", row counts match the backup" if d.get("matched") else ""))
        await self._write(obj, ctx, phase(
            "Succeeded", "Restored", message, meta["generation"], raw, **fields,
            completedAt=d.get("completedAt") or rfc3339(ended),
            durationSeconds=d.get("durationSeconds") or seconds_between(raw.get("startedAt"),
                                                                         ended),
            lastError=None))
        ctx.emit("Normal", "Restored", message)
        return IDLE

    # -- shared pieces ---------------------------------------------------------------------

    @staticmethod
    def _target(spec: DatabaseRestoreSpec, backup: dict[str, Any]) -> DatabaseRef:
        """The database to restore into: the spec's, else the backup's own."""
        if spec.database is not None:
            return spec.database
        return DatabaseRef.model_validate((backup.get("spec") or {}).get("database") or {})

    def _owner(self, obj: dict[str, Any]) -> Owner:
        meta = obj["metadata"]
        return Owner("DatabaseRestore", meta["name"], meta["namespace"], meta["uid"],
                     int(meta.get("generation", 1)))

    async def _retry(self, obj: dict[str, Any], ctx: FlowContext, reason: str, message: str,
                     *, warn: bool = True) -> float:
        raw = obj.get("status") or {}
        delay = self.backoff.next()
        if (raw.get("phase"), raw.get("reason"), raw.get("message")) != ("Pending", reason,
                                                                          message):
            await self._write(obj, ctx, phase("Pending", reason, message,
                                              obj["metadata"]["generation"], raw))
            if warn:
                ctx.emit("Warning", reason, message)
        return delay

    async def _fail(self, obj: dict[str, Any], ctx: FlowContext, reason: str, message: str,
                    fields: dict[str, Any] | None = None) -> float:
        raw, ended = obj.get("status") or {}, utcnow()
        await self._write(obj, ctx, phase(
            "Failed", reason, f"restore failed: {message}", obj["metadata"]["generation"], raw,
            completedAt=rfc3339(ended),
            durationSeconds=seconds_between(raw.get("startedAt"), ended),
            lastError={"message": message[:1024]}, **(fields or {})))
        ctx.emit("Warning", "RestoreFailed", f"{reason}: {message}")
        return IDLE
