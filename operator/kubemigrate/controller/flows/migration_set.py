"""One MigrationSet's way to its target version: one Job per change, not one per migration.

Each step reads the set's source (its ConfigMaps, parsed as the CLI parses a directory) and the
database's history (the truth), decides what the set needs (nothing, a run up to the target, or
a rollback down to it), and starts or follows the one Job that does it (``kubemigrate run-set``).
While the Job runs, status follows the history: applied, pending, currentVersion. The run's key
(source checksum, target, generation) is in status before the Job starts and names the Job, so a
restarted operator adopts the Job it started and never starts a second one for the same run.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from kubemigrate.controller.build import set_job
from kubemigrate.controller.build.jobs import Owner, job_failure, job_finished, job_name
from kubemigrate.controller.build.set_status import Progress, progress, run_fields
from kubemigrate.controller.build.status import merged, seconds, status_of
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.flows.fleet import FleetFlow
from kubemigrate.controller.flows.set_source import ReadSource, Refusal, read, source_identity
from kubemigrate.controller.flows.set_status import RESYNC, SetStatusWriter
from kubemigrate.controller.kube.api import Forbidden, Invalid, NotFound
from kubemigrate.controller.ordering.migrations import DatabaseKey, Peer, PeerIndex
from kubemigrate.engine import EngineError, Migrator, VersionState, version_key
from kubemigrate.jobresult import Outcome, read_outcome, termination_message
from kubemigrate.models.backup import BackupPhase, DatabaseBackupStatus
from kubemigrate.models.common import LocalObjectReference
from kubemigrate.models.migration_set import (
    MAX_VERSIONS,
    MigrationSetPhase,
    MigrationSetSpec,
    MigrationSetStatus,
    SetError,
    SetRun,
)

POLL = 2.0
"""How often a running set reads the history and its Job (Job events wake it sooner)."""
SETTLED = frozenset(
    {MigrationSetPhase.SUCCEEDED, MigrationSetPhase.DRY_RUN_SUCCEEDED, MigrationSetPhase.FAILED}
)
BACKUPS = "databasebackups"
LATE_LOOKS = 5
"""Looks (POLL apart) for a finished Job's result that its pod's status does not show yet."""


def conflicts(
    obj: Mapping[str, Any], spec: MigrationSetSpec, versions: Collection[str], index: PeerIndex
) -> str | None:
    """A message naming the Migrations of this database whose version is also in the set."""
    assert spec.database is not None
    meta, ref = obj["metadata"], spec.database.secret_ref
    database = DatabaseKey(meta["namespace"], ref.name, ref.key, spec.history_schema)
    mine = {version_key(v) for v in versions}
    clash: list[Peer] = sorted(
        (p for p in index.get(database, ()) if p.key in mine), key=lambda p: p.key
    )
    if not clash:
        return None
    named = ", ".join(f"Migration {p.name} (version {p.version})" for p in clash[:10])
    return (
        f"version(s) in both MigrationSet {meta['name']} and {named} on database "
        f"{database}: a version belongs to one resource; remove it from one of them"
    )


class MigrationSetFlow:
    """The state machine of one MigrationSet (one instance per daemon)."""

    def __init__(self, backoff: Backoff, index: PeerIndex) -> None:
        self.backoff, self.index = backoff, index
        self.writer = SetStatusWriter(backoff)
        self.fleet = FleetFlow(self.writer)
        self._late: dict[str, int] = {}
        self._source: ReadSource | None = None

    async def step(self, body: Mapping[str, Any], ctx: StepContext) -> float:
        """Do the next thing for this set; return seconds until the next look."""
        obj = self.writer.freshest(body)
        try:
            spec = MigrationSetSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return await self._refuse(
                obj, "", Refusal("InvalidSpec", f"{where}: {first.get('msg')}"), ctx
            )
        if (due := self.writer.until_next_attempt(obj)) > 0:
            return due
        source: ReadSource | None = None
        if spec.source.config_maps is not None:
            found = await read(obj["metadata"]["namespace"], spec, ctx, self._source)
            if isinstance(found, Refusal):
                return await self._refuse(obj, "", found, ctx)
            source = self._source = found
        return await self._reconcile(obj, spec, source, ctx)

    async def _reconcile(
        self,
        obj: dict[str, Any],
        spec: MigrationSetSpec,
        source: ReadSource | None,
        ctx: StepContext,
    ) -> float:
        if spec.targets is not None:
            return await self.fleet.step(obj, spec, source, ctx, self._refuse)
        assert spec.database is not None
        generation = obj["metadata"].get("generation", 1)
        target = spec.target_version or (source.newest if source is not None else None)
        what = source_identity(spec, source)
        key = set_job.run_key(what, target, generation)
        if source is not None:
            if target not in (None, "0") and target not in source.versions:
                refusal = Refusal(
                    "InvalidTarget",
                    f"targetVersion {target} is not a version of the source "
                    f"(newest: {source.newest})",
                )
                return await self._refuse(obj, key, refusal, ctx)
            clash = conflicts(obj, spec, source.versions, self.index)
            if clash is not None:
                return await self._refuse(obj, key, Refusal("VersionConflict", clash), ctx)
        current = self.writer.current(obj)
        if (
            current.run_key == key
            and current.phase in SETTLED
            and current.observed_generation == generation
        ):
            return RESYNC
        ref = spec.database.secret_ref
        try:
            url = await ctx.api.secret_value(obj["metadata"]["namespace"], ref.name, ref.key)
        except NotFound as exc:
            return await self.writer.transient(obj, exc.reason("Secret"), str(exc), ctx)
        return await self._run(obj, spec, source, (url, target, key), ctx)

    async def _refuse(
        self, obj: dict[str, Any], key: str, refusal: Refusal, ctx: StepContext
    ) -> float:
        """Bad input: said once in status (and an Event), nothing applied."""
        if refusal.transient:
            return await self.writer.transient(obj, refusal.reason, refusal.message, ctx)
        if self.writer.unchanged(obj, MigrationSetPhase.FAILED, refusal.reason, key) and (
            self.writer.current(obj).message == refusal.message
        ):
            return RESYNC
        return await self.writer.failed(
            obj, refusal.reason, refusal.message, ctx, MigrationSetStatus(run_key=key)
        )

    # -- the database and the run ----------------------------------------------------------

    def _migrator(self, url: str, spec: MigrationSetSpec, obj: Mapping[str, Any]) -> Migrator:
        return Migrator(
            url,
            history_schema=spec.history_schema,
            application_name=f"kubemigrate-operator {obj['metadata']['uid']}"[:63],
            lock_wait_seconds=5.0,
            actor=f"kubemigrate-operator@{socket.gethostname()}",
        )

    async def _states(
        self, url: str, spec: MigrationSetSpec, obj: Mapping[str, Any], source: ReadSource | None
    ) -> list[VersionState]:
        migrator = self._migrator(url, spec, obj)
        return await asyncio.to_thread(migrator.status, source.sources if source else [])

    async def _run(
        self,
        obj: dict[str, Any],
        spec: MigrationSetSpec,
        source: ReadSource | None,
        run: tuple[str, str | None, str],
        ctx: StepContext,
    ) -> float:
        url, target, key = run
        try:
            states = await self._states(url, spec, obj, source)
        except EngineError as exc:
            return await self.writer.transient(obj, "DatabaseUnavailable", str(exc), ctx)
        now = progress(states, source.versions if source else None, target or "0")
        counts = self._counts(now, source, target)
        current = self.writer.current(obj)
        running = current.run_key == key and current.last_run is not None and current.last_run.job
        if source is not None and not running:
            refused = self._precheck(states, source, now, target, spec)
            if refused is not None:
                return await self._refuse(obj, key, refused, ctx)
            if now.pending == 0 and not spec.dry_run:
                message = f"up to date at version {now.current or 'none'}"
                await self.writer.write(
                    obj,
                    ctx,
                    merged(
                        counts,
                        MigrationSetStatus(
                            phase=MigrationSetPhase.SUCCEEDED,
                            reason="UpToDate",
                            message=message,
                            run_key=key,
                            last_error=None,
                        ),
                    ),
                )
                ctx.emit("Normal", "UpToDate", message)
                return RESYNC
        down = bool(
            source is not None
            and target is not None
            and now.current is not None
            and version_key(target) < version_key(now.current)
        )
        if spec.backup_enabled and not spec.dry_run and not running:
            waiting = await self._backup_first(obj, spec, url, key, ctx)
            if waiting is not None:
                return waiting
        return await self._job(
            obj, spec=spec, source=source, run=(target, key, down), counts=counts, ctx=ctx
        )

    def _counts(
        self, now: Progress, source: ReadSource | None, target: str | None
    ) -> MigrationSetStatus:
        counts = MigrationSetStatus(current_version=now.current, applied=now.applied)
        if source is not None:
            counts.pending = now.pending
            counts.source_checksum = source.checksum
            counts.versions = source.versions[:MAX_VERSIONS]  # what the schema allows
        if target is not None:
            counts.target_version = target
        return counts

    def _precheck(
        self,
        states: list[VersionState],
        source: ReadSource,
        now: Progress,
        target: str | None,
        spec: MigrationSetSpec,
    ) -> Refusal | None:
        """What the run would refuse, found before a Job: drift, or rollbacks without down files."""
        drifted = [s.version for s in states if s.state == "drifted"]
        if drifted:
            return Refusal(
                "DriftDetected",
                "applied versions whose files changed since they were applied: "
                + ", ".join(drifted[:20])
                + "; restore the files (or run kubemigrate repair) to go on",
            )
        if target is None or now.current is None or version_key(target) >= version_key(now.current):
            return None
        limit = version_key(target)
        applied = {version_key(s.version) for s in states if s.state in ("applied", "missing")}
        lacking = [
            s.version
            for s in source.sources
            if s.key > limit and s.key in applied and s.down_sql is None
        ]
        missing = [
            s.version for s in states if s.state == "missing" and version_key(s.version) > limit
        ]
        if lacking or missing:
            named = ", ".join((lacking + missing)[:20])
            return Refusal(
                "NoRollbackSql",
                f"cannot roll back to {target}: no down file for version(s) {named}; "
                "nothing was reverted",
            )
        return None

    async def _backup_first(
        self, obj: dict[str, Any], spec: MigrationSetSpec, url: str, key: str, ctx: StepContext
    ) -> float | None:
        """None once the run's DatabaseBackup is verified; else the delay before looking again."""
        owner = Owner.of("MigrationSet", obj)
        name = job_name(owner, f"pre-{key}")
        ns = owner.namespace
        if spec.backup is None or spec.backup.storage is None:
            return await self._refuse(
                obj,
                key,
                Refusal(
                    "NoBackupStorage",
                    "spec.backup.storage is not set: set spec.backup.storage.persistentVolumeClaim",
                ),
                ctx,
            )
        backup = await ctx.api.get_custom(BACKUPS, ns, name)
        if backup is None:
            try:
                await asyncio.to_thread(self._migrator(url, spec, obj).ensure_history)
            except EngineError as exc:
                return await self.writer.transient(obj, "DatabaseUnavailable", str(exc), ctx)
            backup = await ctx.api.create_custom(
                BACKUPS, set_job.backup_manifest(owner, spec, name)
            )
            ctx.emit("Normal", "BackingUp", f"Taking backup {name} before the run")
        found = status_of(DatabaseBackupStatus, backup)
        ref = LocalObjectReference(name=name)
        if found.phase is BackupPhase.FAILED:
            return await self.writer.failed(
                obj,
                "BackupFailed",
                f"backup {name} failed, so nothing was applied: {found.message or ''}",
                ctx,
                MigrationSetStatus(backup_ref=ref, run_key=key),
            )
        if found.phase is BackupPhase.SUCCEEDED and found.verified:
            return None
        message = f"taking backup {name} before the run ({found.phase or 'Pending'})"
        current = self.writer.current(obj)
        if (current.phase, current.message) != (MigrationSetPhase.BACKING_UP, message):
            await self.writer.write(
                obj,
                ctx,
                MigrationSetStatus(
                    phase=MigrationSetPhase.BACKING_UP,
                    reason="BackingUp",
                    message=message,
                    backup_ref=ref,
                ),
            )
        return POLL

    async def _job(
        self,
        obj: dict[str, Any],
        *,
        spec: MigrationSetSpec,
        source: ReadSource | None,
        run: tuple[str | None, str, bool],
        counts: MigrationSetStatus,
        ctx: StepContext,
    ) -> float:
        target, key, down = run
        owner = Owner.of("MigrationSet", obj)
        current = self.writer.current(obj)
        attempt = (current.failed_attempts or 0) if current.run_key == key else 0
        name = set_job.run_job_name(owner, key, attempt)
        previous = current.last_run.job if current.last_run is not None else None
        if previous and previous != name and current.run_key != key:
            older = await ctx.api.job(owner.namespace, previous)
            if older is not None and job_finished(older) is None:
                return POLL  # the run of the spec before is still going: one run at a time
        phase = MigrationSetPhase.ROLLING_BACK if down else MigrationSetPhase.APPLYING
        verb = "rolling back to" if down else "applying up to"
        job = await ctx.api.job(owner.namespace, name)
        if job is None:
            await self.writer.write(
                obj,
                ctx,
                merged(
                    counts,
                    MigrationSetStatus(
                        phase=phase,
                        reason="DryRunning"
                        if spec.dry_run
                        else ("RollingBack" if down else "Applying"),
                        message=f"Job {name} {verb} version {target or 'the newest'}"
                        + (" (dry run)" if spec.dry_run else ""),
                        run_key=key,
                        last_run=SetRun(job=name),
                        failed_attempts=current.failed_attempts if current.run_key == key else None,
                    ),
                ),
            )
            try:
                job = await ctx.api.ensure_job(
                    set_job.set_job(
                        owner,
                        spec,
                        ctx.settings,
                        keys=source.keys if source else {},
                        target=target,
                        run=key,
                        attempt=attempt,
                    )
                )
            except Invalid as exc:
                return await self.writer.failed(
                    obj, "RunJobInvalid", f"the API server refused the Job: {exc}", ctx
                )
            except Forbidden as exc:
                return await self.writer.transient(
                    obj, "RunJobForbidden", f"cannot create the Job: {exc}", ctx
                )
            ctx.emit(
                "Normal",
                "RunStarted",
                f"Started Job {name} {verb} version {target or 'the newest'}",
            )
        finished = job_finished(job)
        if finished is None:
            return await self._follow(obj, counts, ctx)
        pods = await ctx.api.job_pods(owner.namespace, name)
        message = termination_message(pods)
        if message is None and self._late.get(name, 0) < LATE_LOOKS:
            # The Job controller may mark the Job failed before the pod's status (with the
            # result) is written: look again a few times before taking it as no result.
            self._late[name] = self._late.get(name, 0) + 1
            return POLL
        self._late.pop(name, None)
        outcome = read_outcome(message, None if finished else job_failure(job))
        return await self._finished(obj, spec, source, (name, key, outcome), ctx)

    async def _follow(
        self, obj: dict[str, Any], counts: MigrationSetStatus, ctx: StepContext
    ) -> float:
        """While the Job runs: status follows the history, so `kubectl get migset -w` moves."""
        current = self.writer.current(obj)
        if (current.applied, current.pending, current.current_version) != (
            counts.applied,
            counts.pending if "pending" in counts.model_fields_set else current.pending,
            counts.current_version,
        ):
            assert current.phase is not None and current.reason is not None
            await self.writer.write(
                obj,
                ctx,
                merged(
                    counts,
                    MigrationSetStatus(
                        phase=current.phase,
                        reason=current.reason,
                        message=current.message,
                        failed_attempts=current.failed_attempts,
                    ),
                ),
            )
        return POLL

    async def _finished(
        self,
        obj: dict[str, Any],
        spec: MigrationSetSpec,
        source: ReadSource | None,
        job: tuple[str, str, Outcome],
        ctx: StepContext,
    ) -> float:
        name, key, outcome = job
        ok, reason, message, data = outcome.ok, outcome.reason, outcome.message, outcome.data
        fields = merged(run_fields(data, name), MigrationSetStatus(run_key=key))
        if not data:  # no result at all (the deadline killed the pod): the Job's own reason
            fields.last_error = SetError(message=(message or reason)[:1024])
        url = None
        assert spec.database is not None
        ref = spec.database.secret_ref
        try:
            url = await ctx.api.secret_value(obj["metadata"]["namespace"], ref.name, ref.key)
            states = await self._states(url, spec, obj, source)
            target = spec.target_version or (source.newest if source else data.get("schemaVersion"))
            now = progress(states, source.versions if source else None, str(target or "0"))
            fields = merged(fields, self._counts(now, source, str(target) if target else None))
        except (NotFound, EngineError):
            pass  # the counts stay as last seen; the run's own result is what matters here
        if not ok and data.get("transient"):
            return await self.writer.transient(obj, reason, message or reason, ctx, fields)
        if not ok:
            return await self.writer.failed(
                obj, reason, message or f"Job {name}: {reason}", ctx, fields
            )
        done = int(data.get("rolledBack") or 0) + int(data.get("applied") or 0)
        took = seconds(float(data.get("durationSeconds") or 0.0))
        if spec.dry_run:
            phase, why = MigrationSetPhase.DRY_RUN_SUCCEEDED, "DryRunSucceeded"
            text = (
                f"dry run of {len(data.get('versions') or [])} migration(s) in {took}: "
                f"{data.get('rowsAffected', 0)} row(s); rolled back"
            )
        else:
            phase, why = MigrationSetPhase.SUCCEEDED, reason
            verb = "rolled back" if reason == "RolledBack" else "applied"
            text = (
                f"{verb} {done} migration(s) in {took}, {data.get('rowsAffected', 0)} row(s); "
                f"schema version {data.get('schemaVersion') or 'none'}"
            )
        await self.writer.write(
            obj,
            ctx,
            merged(
                fields, MigrationSetStatus(phase=phase, reason=why, message=text, last_error=None)
            ),
        )
        ctx.emit("Normal", why, text)
        self.backoff.reset()
        return RESYNC
