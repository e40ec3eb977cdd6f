"""One DatabaseRestore: wait for its backup, run the restore Job once, report what arrived.

The Job runs ``kubemigrate restore``, which refuses a target that is not empty unless the spec
asks for ``clean`` and restores in one transaction, so a refused or failed restore leaves the
target as it was; the refusal's reason (TargetNotEmpty) becomes the resource's. Afterwards the
Job counts every table and compares with the counts the backup recorded: status.verification.

Instead of a DatabaseBackup, ``spec.source.objectStore`` names a backup object directly (one
taken by another cluster, or whose resource is gone); the Job checks it against its sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kubemigrate.controller.build.backup_jobs import (
    RESTORE,
    Where,
    object_place,
    parse_location,
    restore_fields,
    restore_request,
)
from kubemigrate.controller.build.jobs import Owner, build_job, job_failure, job_finished, job_name
from kubemigrate.controller.build.status import (
    merged,
    reported,
    seconds_between,
    status_of,
    to_second,
)
from kubemigrate.controller.flows.backup import storage_missing
from kubemigrate.controller.flows.base import StatusWriter
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.kube.api import NotFound
from kubemigrate.jobresult import read_outcome, termination_message
from kubemigrate.models.backup import BackupPhase, DatabaseBackupSpec, DatabaseBackupStatus
from kubemigrate.models.common import DatabaseRef, LastError
from kubemigrate.models.restore import DatabaseRestoreSpec, DatabaseRestoreStatus, RestorePhase

PLURAL = "databaserestores"
BACKUPS = "databasebackups"
IDLE = 300.0
JOB_POLL = 2.0
TERMINAL = frozenset({RestorePhase.SUCCEEDED, RestorePhase.FAILED})


class RestoreFlow:
    """The state machine of one DatabaseRestore (one instance per daemon)."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.writer = StatusWriter(PLURAL, DatabaseRestoreStatus)

    async def step(self, body: Mapping[str, Any], ctx: StepContext) -> float:
        obj = self.writer.freshest(body)
        current = self.writer.current(obj)
        if current.phase in TERMINAL:
            return IDLE
        try:
            spec = DatabaseRestoreSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            return await self._fail(obj, ctx, "InvalidSpec", f"invalid spec: {exc.errors()[0]}")
        if current.phase is not RestorePhase.RUNNING:
            delay = await self._start(obj, spec, ctx)
            if delay is not None:
                return delay
        return await self._follow(obj, spec, ctx)

    async def _start(
        self, obj: dict[str, Any], spec: DatabaseRestoreSpec, ctx: StepContext
    ) -> float | None:
        """Move to Running once the backup is usable; else the delay before looking again."""
        meta = obj["metadata"]
        found = await self._source(obj, spec, ctx)
        if not isinstance(found, tuple):
            return found
        place, target, label = found
        missing = await storage_missing(ctx, meta["namespace"], place)
        if missing is not None:
            return await self._retry(obj, ctx, *missing)
        try:
            await ctx.api.secret_value(
                meta["namespace"], target.secret_ref.name, target.secret_ref.key
            )
        except NotFound as exc:
            return await self._retry(obj, ctx, exc.reason("Secret"), str(exc))
        name = job_name(self._owner(obj), RESTORE)
        clean = " (clean: dropping the backed-up objects first)" if spec.clean else ""
        message = f"restoring {label} into the database of Secret {target.secret_ref.name}{clean}"
        await self.writer.write(
            obj,
            ctx,
            DatabaseRestoreStatus(
                phase=RestorePhase.RUNNING,
                reason="Restoring",
                message=message,
                started_at=to_second(datetime.now(UTC)),
                job=name,
                last_error=None,
            ),
        )
        ctx.emit("Normal", "RestoreStarted", f"Started restore Job {name}: {message}")
        return None

    async def _source(
        self, obj: dict[str, Any], spec: DatabaseRestoreSpec, ctx: StepContext
    ) -> tuple[Where, DatabaseRef, str] | float:
        """(where the backup is, the database to restore into, how to name it), or the delay
        before looking again when the DatabaseBackup is not usable (yet)."""
        if spec.source is not None:
            assert spec.database is not None  # the model requires it with source
            given = object_place(spec.source.object_store, spec.source.object_store.key)
            return given, spec.database, given.location
        assert spec.backup_ref is not None  # exactly one of backupRef and source
        backup_name = spec.backup_ref.name
        backup = await ctx.api.get_custom(BACKUPS, obj["metadata"]["namespace"], backup_name)
        if backup is None:
            return await self._retry(
                obj, ctx, "BackupNotFound", f"DatabaseBackup {backup_name} not found"
            )
        found = status_of(DatabaseBackupStatus, backup)
        if found.phase is BackupPhase.FAILED:
            return await self._fail(
                obj,
                ctx,
                "BackupFailed",
                f"DatabaseBackup {backup_name} failed: {found.message or ''}",
            )
        storage = DatabaseBackupSpec.model_validate(backup.get("spec") or {}).storage
        place = parse_location(found.location, storage)
        if found.phase is not BackupPhase.SUCCEEDED or place is None:
            return await self._retry(
                obj,
                ctx,
                "WaitingForBackup",
                f"waiting for DatabaseBackup {backup_name} to succeed ({found.phase or 'Pending'})",
                warn=False,
            )
        return place, self._target(spec, backup), f"backup {backup_name}"

    async def _follow(
        self, obj: dict[str, Any], spec: DatabaseRestoreSpec, ctx: StepContext
    ) -> float:
        meta, current = obj["metadata"], self.writer.current(obj)
        name = current.job or job_name(self._owner(obj), RESTORE)
        job = await ctx.api.job(meta["namespace"], name)
        if job is None:
            found = await self._source(obj, spec, ctx)
            if not isinstance(found, tuple):
                return await self._fail(obj, ctx, "BackupNotFound", "the backup to restore is gone")
            place, target, _ = found
            request = restore_request(
                place,
                target.secret_ref.name,
                target.secret_ref.key,
                clean=spec.clean,
                deadline=spec.active_deadline_seconds,
                jobs=spec.jobs,
            )
            manifest = build_job(self._owner(obj), request, ctx.settings)
            manifest["metadata"]["name"] = name
            job = await ctx.api.ensure_job(manifest)
        finished = job_finished(job)
        if finished is None:
            return JOB_POLL
        pods = await ctx.api.job_pods(meta["namespace"], name)
        outcome = read_outcome(termination_message(pods), None if finished else job_failure(job))
        fields = DatabaseRestoreStatus.model_validate(restore_fields(outcome))
        if not outcome.ok:
            return await self._fail(
                obj, ctx, outcome.reason, outcome.message or outcome.reason, fields
            )
        ended = datetime.now(UTC)
        d = outcome.data
        counts = fields.verification
        label = f"backup {spec.backup_ref.name}" if spec.backup_ref else "the backup object"
        message = (
            f"restored {label} into database "
            f"{d.get('database', '?')}: {counts.tables if counts else 0} tables, "
            f"{counts.rows if counts else 0} rows"
            + (", row counts match the backup" if d.get("matched") else "")
        )
        said = reported(DatabaseRestoreStatus, d)
        await self.writer.write(
            obj,
            ctx,
            merged(
                fields,
                DatabaseRestoreStatus(
                    phase=RestorePhase.SUCCEEDED,
                    reason="Restored",
                    message=message,
                    completed_at=said.completed_at or to_second(ended),
                    duration_seconds=said.duration_seconds
                    or seconds_between(current.started_at, ended),
                    last_error=None,
                ),
            ),
        )
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
        return Owner(
            "DatabaseRestore",
            meta["name"],
            meta["namespace"],
            meta["uid"],
            int(meta.get("generation", 1)),
        )

    async def _retry(
        self, obj: dict[str, Any], ctx: StepContext, reason: str, message: str, *, warn: bool = True
    ) -> float:
        current = self.writer.current(obj)
        delay = self.backoff.next()
        if (current.phase, current.reason, current.message) != (
            RestorePhase.PENDING,
            reason,
            message,
        ):
            await self.writer.write(
                obj,
                ctx,
                DatabaseRestoreStatus(phase=RestorePhase.PENDING, reason=reason, message=message),
            )
            if warn:
                ctx.emit("Warning", reason, message)
        return delay

    async def _fail(
        self,
        obj: dict[str, Any],
        ctx: StepContext,
        reason: str,
        message: str,
        fields: DatabaseRestoreStatus | None = None,
    ) -> float:
        ended = datetime.now(UTC)
        change = DatabaseRestoreStatus(
            phase=RestorePhase.FAILED,
            reason=reason,
            message=f"restore failed: {message}",
            completed_at=to_second(ended),
            duration_seconds=seconds_between(self.writer.current(obj).started_at, ended),
            last_error=LastError(message=message[:1024]),
        )
        await self.writer.write(obj, ctx, change if fields is None else merged(change, fields))
        ctx.emit("Warning", "RestoreFailed", f"{reason}: {message}")
        return IDLE
