"""One DatabaseBackup's way from Pending through Running to Succeeded or Failed, then retention.

A daemon per backup calls `BackupFlow.step()` in a loop, like Migration's flow: wait for older
backups of the same database, start the Job (its name goes to status first, so a restarted
operator adopts it), read the Job's JSON result from its termination message, write status.
The Job's activeDeadlineSeconds bounds the run: when the Job controller kills it, the Job's
Failed condition (DeadlineExceeded) becomes the backup's reason, so no backup stays Running.
A finished backup's daemon then only applies retention: its TTL, and keepLast when it succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from kubemigrate.controller.build.backup_jobs import (
    BACKUP,
    ObjectPlace,
    Where,
    backup_fields,
    backup_request,
    credential_keys,
    place_of,
)
from kubemigrate.controller.build.jobs import Owner, build_job, job_failure, job_finished, job_name
from kubemigrate.controller.build.status import merged, reported, seconds_between, to_second
from kubemigrate.controller.flows.base import REFUSED_LOGIN, StatusWriter
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.kube.api import NotFound
from kubemigrate.controller.ordering.backups import (
    BackupIndex,
    ahead_of,
    backup_peer_of,
    to_prune,
    ttl_left,
)
from kubemigrate.engine import parse_duration
from kubemigrate.jobresult import Outcome, read_outcome, termination_message
from kubemigrate.models.backup import BackupPhase, DatabaseBackupSpec, DatabaseBackupStatus
from kubemigrate.models.common import LastError

PLURAL = "databasebackups"
IDLE = 300.0
QUEUED = 30.0
JOB_POLL = 2.0
TERMINAL = frozenset({BackupPhase.SUCCEEDED, BackupPhase.FAILED})


class BackupFlow:
    """The state machine of one DatabaseBackup (one instance per daemon)."""

    def __init__(self, backoff: Backoff, index: BackupIndex) -> None:
        self.backoff, self.index = backoff, index
        self.writer = StatusWriter(PLURAL, DatabaseBackupStatus)
        self._pruned = False

    async def step(self, body: Mapping[str, Any], ctx: StepContext) -> float:
        """Do the next thing for this backup; return seconds until the next look."""
        obj = self.writer.freshest(body)
        current = self.writer.current(obj)
        try:
            spec = DatabaseBackupSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            return await self._fail(obj, ctx, "InvalidSpec", f"invalid spec: {exc.errors()[0]}")
        if current.phase in TERMINAL:
            return await self._retain(obj, spec, ctx)
        meta = obj["metadata"]
        place = place_of(spec, meta["namespace"], meta["name"], meta["uid"])
        if current.phase is not BackupPhase.RUNNING:
            delay = await self._start(obj, spec, place, ctx)
            if delay is not None:
                return delay
        return await self._follow(obj, spec, place, ctx)

    async def _start(
        self, obj: dict[str, Any], spec: DatabaseBackupSpec, place: Where, ctx: StepContext
    ) -> float | None:
        """Move to Running when it is this backup's turn; else the delay before looking again."""
        meta = obj["metadata"]
        me = backup_peer_of(obj)
        ahead = ahead_of(me, list(self.index.get(me.database, ())))
        if ahead is not None:
            await self._pending(
                obj,
                ctx,
                "WaitingForBackup",
                f"waiting for backup {ahead.name} of the same database "
                f"({ahead.phase or 'Pending'}): one backup at a time",
            )
            return QUEUED
        ref = spec.database.secret_ref
        try:
            await ctx.api.secret_value(meta["namespace"], ref.name, ref.key)
        except NotFound as exc:
            return await self._retry(obj, ctx, exc.reason("Secret"), str(exc))
        missing = await storage_missing(ctx, meta["namespace"], place)
        if missing is not None:
            return await self._retry(obj, ctx, *missing)
        # After a refused login, the next attempt is a new Job of its own.
        refused = self.writer.current(obj).failed_logins or 0
        name = job_name(self._owner(obj), BACKUP, refused)
        await self.writer.write(
            obj,
            ctx,
            DatabaseBackupStatus(
                phase=BackupPhase.RUNNING,
                reason="BackingUp",
                message=f"backup Job {name} is running",
                started_at=to_second(datetime.now(UTC)),
                job=name,
                last_error=None,
            ),
        )
        ctx.emit("Normal", "BackupStarted", f"Started backup Job {name} writing {place.location}")
        if not refused:
            self.backoff.reset()
        return None

    async def _follow(
        self, obj: dict[str, Any], spec: DatabaseBackupSpec, place: Where, ctx: StepContext
    ) -> float:
        """Start the Job if it is not there yet; read its result once it finished."""
        meta = obj["metadata"]
        name = self.writer.current(obj).job or job_name(self._owner(obj), BACKUP)
        job = await ctx.api.job(meta["namespace"], name)
        if job is None:
            manifest = build_job(self._owner(obj), backup_request(spec, place), ctx.settings)
            manifest["metadata"]["name"] = name
            job = await ctx.api.ensure_job(manifest)
        finished = job_finished(job)
        if finished is None:
            return JOB_POLL
        pods = await ctx.api.job_pods(meta["namespace"], name)
        outcome = read_outcome(termination_message(pods), None if finished else job_failure(job))
        if outcome.ok and outcome.data.get("verified"):
            return await self._succeeded(obj, spec, place, outcome, ctx)
        if outcome.reason in REFUSED_LOGIN:
            return await self._refused(obj, outcome, name, _fields(outcome, place), ctx)
        if outcome.ok:  # ran, but verification did not run or did not pass
            outcome = Outcome(False, "NotVerified", "the backup was not verified", outcome.data)
        return await self._fail(
            obj, ctx, outcome.reason, outcome.message or outcome.reason, _fields(outcome, place)
        )

    async def _succeeded(
        self,
        obj: dict[str, Any],
        spec: DatabaseBackupSpec,
        place: Where,
        outcome: Outcome,
        ctx: StepContext,
    ) -> float:
        meta, d = obj["metadata"], outcome.data
        ended = datetime.now(UTC)
        fields = _fields(outcome, place)
        check = " and test-restored" if "verification" in fields.model_fields_set else ""
        message = (
            f"backed up database {d.get('database', '?')} (PostgreSQL "
            f"{d.get('serverVersion', '?')}): {d.get('sizeBytes', 0)} bytes to "
            f"{place.location}, verified{check}"
        )
        said = reported(DatabaseBackupStatus, d)
        await self.writer.write(
            obj,
            ctx,
            merged(
                fields,
                DatabaseBackupStatus(
                    phase=BackupPhase.SUCCEEDED,
                    reason="Verified",
                    message=message,
                    completed_at=said.completed_at or to_second(ended),
                    duration_seconds=said.duration_seconds
                    or seconds_between(self.writer.current(obj).started_at, ended),
                    last_error=None,
                    failed_logins=None,
                ),
            ),
        )
        ctx.emit("Normal", "BackupSucceeded", message)
        me = backup_peer_of(obj)
        ctx.metrics.backups.labels(meta["namespace"], "succeeded").inc()
        ctx.metrics.saw_backup_success(meta["namespace"], str(me.database), ended.timestamp())
        took = said.duration_seconds or seconds_between(self.writer.current(obj).started_at, ended)
        if took is not None:
            ctx.metrics.backup_duration.labels(meta["namespace"], str(me.database)).observe(took)
        ctx.metrics.backup_size.labels(meta["namespace"], str(me.database)).set(
            int(d.get("sizeBytes") or 0)
        )
        return await self._retain(obj, spec, ctx)

    async def _retain(
        self, obj: dict[str, Any], spec: DatabaseBackupSpec, ctx: StepContext
    ) -> float:
        """Apply keepLast (once, when this backup succeeded) and this backup's own TTL."""
        meta, current = obj["metadata"], self.writer.current(obj)
        if current.phase is BackupPhase.SUCCEEDED and current.completed_at is not None:
            # After a restart the last-success gauge comes back from the backups' status.
            database = str(backup_peer_of(obj).database)
            ctx.metrics.saw_backup_success(
                meta["namespace"], database, current.completed_at.timestamp()
            )
        retention = spec.retention
        if retention is None:
            return IDLE
        if retention.keep_last and current.phase is BackupPhase.SUCCEEDED and not self._pruned:
            await self._prune(obj, retention.keep_last, ctx)
        if retention.ttl:
            left = ttl_left(
                current.completed_at,
                timedelta(seconds=parse_duration(retention.ttl)),
                datetime.now(UTC),
            )
            if left is not None and left <= 0:
                ctx.emit(
                    "Normal", "Expired", f"Deleting the backup: its TTL of {retention.ttl} ran out"
                )
                await ctx.api.delete_custom(PLURAL, meta["namespace"], meta["name"])
                return IDLE
            if left is not None:
                return min(IDLE, max(left, 0.5))
        return IDLE

    async def _prune(self, obj: dict[str, Any], keep_last: int, ctx: StepContext) -> None:
        """Delete the older succeeded backups of this database beyond keep_last; each one's
        deletion handler removes its file before the resource goes."""
        meta = obj["metadata"]
        everyone = [backup_peer_of(o) for o in await ctx.api.list_custom(PLURAL, meta["namespace"])]
        me = backup_peer_of(obj)
        for name in to_prune(keep_last, me, everyone):
            ctx.emit(
                "Normal",
                "Pruned",
                f"Deleting backup {name}: retention keeps the last "
                f"{keep_last} of database {me.database}",
            )
            await ctx.api.delete_custom(PLURAL, meta["namespace"], name)
        self._pruned = True

    # -- shared pieces ---------------------------------------------------------------------

    def _owner(self, obj: dict[str, Any]) -> Owner:
        meta = obj["metadata"]
        return Owner(
            "DatabaseBackup",
            meta["name"],
            meta["namespace"],
            meta["uid"],
            int(meta.get("generation", 1)),
        )

    async def _pending(
        self, obj: dict[str, Any], ctx: StepContext, reason: str, message: str
    ) -> None:
        current = self.writer.current(obj)
        if (current.phase, current.reason, current.message) != (
            BackupPhase.PENDING,
            reason,
            message,
        ):
            await self.writer.write(
                obj,
                ctx,
                DatabaseBackupStatus(phase=BackupPhase.PENDING, reason=reason, message=message),
            )

    async def _retry(
        self, obj: dict[str, Any], ctx: StepContext, reason: str, message: str
    ) -> float:
        """A failure that time may cure (a Secret or claim not created yet): Pending."""
        delay = self.backoff.next()
        await self._pending(obj, ctx, reason, message)
        ctx.emit("Warning", reason, message)
        return delay

    async def _refused(
        self,
        obj: dict[str, Any],
        outcome: Outcome,
        job: str,
        fields: DatabaseBackupStatus,
        ctx: StepContext,
    ) -> float:
        """The database refused the login, or the Secret's value is no PostgreSQL URL: the rule
        a Migration follows too. A new Job after a backoff, counted in status.failedLogins; at
        the operator's loginAttempts in a row, Failed and Stalled."""
        count = (self.writer.current(obj).failed_logins or 0) + 1
        limit = ctx.settings.login_attempts
        if count >= limit:
            ref = DatabaseBackupSpec.model_validate(obj["spec"]).database.secret_ref
            return await self._fail(
                obj,
                ctx,
                outcome.reason,
                f"{outcome.message} ({count} attempts in a row; fix Secret {ref.name} key "
                f"{ref.key}, then create a new DatabaseBackup)",
                merged(fields, DatabaseBackupStatus(failed_logins=count)),
            )
        delay = self.backoff.next()
        await self.writer.write(
            obj,
            ctx,
            DatabaseBackupStatus(
                phase=BackupPhase.PENDING,
                reason=outcome.reason,
                message=f"{outcome.message} (attempt {count} of {limit}; retrying in {delay:.0f}s)",
                failed_logins=count,
            ),
        )
        ctx.emit("Warning", outcome.reason, outcome.message)
        await ctx.api.delete_job(obj["metadata"]["namespace"], job)
        return delay

    async def _fail(
        self,
        obj: dict[str, Any],
        ctx: StepContext,
        reason: str,
        message: str,
        fields: DatabaseBackupStatus | None = None,
    ) -> float:
        """Failed and Stalled; nothing recorded as a usable backup."""
        ended = datetime.now(UTC)
        change = DatabaseBackupStatus(
            phase=BackupPhase.FAILED,
            reason=reason,
            message=f"backup failed: {message}",
            location=None,
            sha256=None,
            completed_at=to_second(ended),
            duration_seconds=seconds_between(self.writer.current(obj).started_at, ended),
            last_error=LastError(message=message[:1024]),
        )
        await self.writer.write(obj, ctx, change if fields is None else merged(change, fields))
        ctx.emit("Warning", "BackupFailed", f"{reason}: {message}")
        ctx.metrics.backups.labels(obj["metadata"]["namespace"], "failed").inc()
        ctx.metrics.backup_failed(
            obj["metadata"]["namespace"], str(backup_peer_of(obj).database), reason
        )
        return IDLE


async def storage_missing(ctx: StepContext, namespace: str, place: Where) -> tuple[str, str] | None:
    """(reason, message) when the claim, or the object store's credentials Secret or one of
    its keys, does not exist (yet): a Job started now could only hang or fail."""
    if not isinstance(place, ObjectPlace):
        if await ctx.api.pvc_exists(namespace, place.claim):
            return None
        return "ClaimNotFound", f"PersistentVolumeClaim {place.claim} not found"
    ref = place.store.secret_ref
    for key in credential_keys(place.store):
        assert ref is not None
        try:
            await ctx.api.secret_value(namespace, ref.name, key)
        except NotFound as exc:
            return exc.reason("Secret"), f"object store credentials: {exc}"
    return None


def _fields(outcome: Outcome, place: Where) -> DatabaseBackupStatus:
    """The status fields of a finished backup's Job result, as a change."""
    return DatabaseBackupStatus.model_validate(backup_fields(outcome, place))
