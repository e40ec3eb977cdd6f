"""One Migration's way from Pending to Succeeded (or RolledBack, or Failed), one step at a time.

A daemon per Migration calls `MigrationFlow.step()` in a loop. Each step reads the object as it
is now, decides the one thing to do next (wait in the queue, start or read the preflight Job,
apply, roll back), does it, writes status, and says how long to sleep before looking again.
Nothing here is kept only in memory that a restarted operator would need: the phase, the
preflight Job's name and the checksum live in status, and the database's history is the truth
about what is applied, so the engine applies a migration exactly once however often it is asked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kubemigrate.controller.build import preflight, status
from kubemigrate.controller.build.jobs import Owner, build_job, job_name
from kubemigrate.controller.flows import migration_backup
from kubemigrate.controller.flows.base import ResourceFlow
from kubemigrate.controller.kube.api import KubeApi, NotFound
from kubemigrate.controller.ordering.migrations import (
    Blocker,
    Peer,
    apply_blocker,
    peer_of,
    rollback_blocker,
)
from kubemigrate.engine.errors import ConnectionFailed, EngineError, LockTimeout
from kubemigrate.engine.migrate.durations import parse_duration
from kubemigrate.engine.migrate.migrator import Migrator
from kubemigrate.engine.migrate.results import MigrationResult, Origin, RunReport
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.models.migration import MigrationSpec, RollbackStrategy
from kubemigrate.settings import Settings

PLURAL = "migrations"
IDLE = 300.0
"""How long a settled migration sleeps; spec changes and Job events wake it sooner."""
QUEUED = 30.0
"""How long a queued migration sleeps before it looks again, unless woken."""
JOB_POLL = 2.0
SETTLED = frozenset({"Succeeded", "RolledBack", "DryRunSucceeded"})
BLOCKED_REASONS = frozenset({"DependencyCycle", "DuplicateVersion", "RollbackBlocked"})

Emit = Callable[[str, str, str], None]
"""(type, reason, message) -> posts a Kubernetes Event about the object."""
Settle = Callable[[Peer], None]
"""Called when the migration settles, with its new index entry, to wake the next in line."""


@dataclass
class Context:
    """What one step needs besides the object: peers in its database and the outside world."""

    api: KubeApi
    settings: Settings
    emit: Emit
    settle: Settle
    peers: Sequence[Peer]
    logger: logging.Logger | logging.LoggerAdapter[Any] = field(
        default_factory=lambda: logging.getLogger("kubemigrate"))
    observe: Callable[[str, MigrationResult | None, float], None] = lambda *_: None
    """Metrics hook: (outcome, result, seconds)."""


class Backoff:
    """Exponential delay with jitter for transient failures; reset by success."""

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self.failures = first, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.first * 2.0 ** self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not cryptography)

    def reset(self) -> None:
        self.failures = 0


class MigrationFlow(ResourceFlow):
    """The state machine of one Migration object (one instance per daemon)."""

    plural = PLURAL

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.backoff = Backoff(settings.retry_min_seconds, settings.retry_max_seconds)

    # -- the step --------------------------------------------------------------------------

    async def step(self, body: Mapping[str, Any], ctx: Context) -> float:
        """Do the next thing for this object; return seconds until the next look."""
        obj = self._freshest(body)
        meta, raw_status = obj["metadata"], obj.get("status") or {}
        generation = int(meta.get("generation", 1))
        try:
            spec = MigrationSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            message = f"invalid spec: {where}: {first.get('msg')}".replace(": :", ":")
            await self._write(obj, ctx, status.phase("Failed", "InvalidSpec", message,
                                                     generation, raw_status))
            return IDLE
        phase = raw_status.get("phase")
        settled = raw_status.get("observedGeneration") == generation
        if settled and (phase in SETTLED or (phase == "Failed"
                                             and raw_status.get("reason") not in BLOCKED_REASONS)):
            return IDLE
        me = peer_of(obj)
        if spec.rollback:
            return await self._roll_back(obj, spec, me, ctx)
        return await self._apply(obj, spec, me, ctx)

    # -- apply and dry run -------------------------------------------------------------------

    async def _apply(self, obj: dict[str, Any], spec: MigrationSpec, me: Peer,
                     ctx: Context) -> float:
        blocker = apply_blocker(me, ctx.peers)
        if blocker:
            return await self._wait(obj, blocker, ctx)
        source = await self._source(obj, spec, ctx)
        if source is None:
            return self.backoff.next()
        raw_status = obj.get("status") or {}
        generation = obj["metadata"]["generation"]
        already_past_preflight = (raw_status.get("observedGeneration") == generation
                                  and raw_status.get("phase") in ("BackingUp", "Applying"))
        if spec.preflight.enabled and not spec.dry_run and not already_past_preflight:
            outcome = await self._preflight(obj, spec, source, ctx)
            if outcome is not None:
                return outcome
        url = await self._url(obj, spec, ctx)
        if url is None:
            return self.backoff.next()
        if spec.backup_enabled and not spec.dry_run:
            pending = await migration_backup.backup_first(self, obj, spec, url, ctx)
            if pending is not None:
                return pending
        verb = "Dry-running" if spec.dry_run else "Applying"
        await self._write(obj, ctx, status.phase(
            "Applying", "DryRunning" if spec.dry_run else "Applying",
            f"{verb} version {spec.version}", generation, obj.get("status") or {}))
        ctx.emit("Normal", "Applying", f"{verb} version {spec.version}")
        engine = self._engine(url, obj, spec, ctx)
        try:
            report = await asyncio.to_thread(engine.apply, [source], dry_run=spec.dry_run,
                                             allow_out_of_order=spec.allow_out_of_order)
        except (ConnectionFailed, LockTimeout) as exc:
            return await self._transient(obj, "DatabaseUnavailable", str(exc), ctx)
        except EngineError as exc:
            return await self._failed(obj, type(exc).__name__, str(exc), ctx, None)
        return await self._applied(obj, spec, source, report, ctx)

    async def _applied(self, obj: dict[str, Any], spec: MigrationSpec, source: MigrationSource,
                       report: RunReport, ctx: Context) -> float:
        generation = obj["metadata"]["generation"]
        result = report.results[0] if report.results else None
        if result is not None and not result.ok:
            ctx.observe("failed", result, result.duration_seconds)
            fields = status.run_fields(report, result)
            fields["lastError"] = status.last_error(result)
            return await self._failed(obj, "SQLError", status.error_summary(result), ctx, fields)
        self.backoff.reset()
        fields = status.run_fields(report, result)
        fields["lastError"] = None
        if spec.dry_run:
            fields["dryRun"] = {
                "completedAt": fields["completedAt"], "checksum": source.checksum,
                "rowsAffected": fields.get("rowsAffected", 0),
                "tablesCreated": fields.get("tablesCreated", []),
                "tablesAltered": fields.get("tablesAltered", []),
                "tablesDropped": fields.get("tablesDropped", [])}
            message = (f"dry run of version {spec.version}: "
                       f"{fields.get('rowsAffected', 0)} row(s), created "
                       f"{', '.join(fields.get('tablesCreated', [])) or 'no tables'}; "
                       "rolled back")
            await self._write(obj, ctx, status.phase("DryRunSucceeded", "DryRunSucceeded",
                                                     message, generation, obj.get("status") or {},
                                                     **fields))
            ctx.emit("Normal", "DryRunSucceeded", message)
            return self._settled(obj, ctx, "DryRunSucceeded")
        fields.update(checksum=source.checksum,
                      rollbackAvailable=migration_backup.rollback_available(
                          spec, source.down_sql is not None, obj.get("status") or {}))
        if result is None:
            message = f"version {spec.version} was already applied"
            reason = "AlreadyApplied"
        else:
            ctx.observe("applied", result, result.duration_seconds)
            message = (f"applied version {spec.version} in "
                       f"{status.seconds(result.duration_seconds)}, "
                       f"{result.rows_affected} row(s)")
            reason = "Applied"
        await self._write(obj, ctx, status.phase("Succeeded", reason, message, generation,
                                                 obj.get("status") or {}, **fields))
        ctx.emit("Normal", reason, message)
        return self._settled(obj, ctx, "Succeeded")

    # -- rollback --------------------------------------------------------------------------

    async def _roll_back(self, obj: dict[str, Any], spec: MigrationSpec, me: Peer,
                         ctx: Context) -> float:
        blocker = rollback_blocker(me, ctx.peers)
        if blocker:
            return await self._wait(obj, blocker, ctx)
        restoring = spec.rollback_strategy is RollbackStrategy.RESTORE
        if restoring and (pending := await migration_backup.follow_restore(self, obj, ctx)):
            return pending
        generation = obj["metadata"]["generation"]
        source = await self._source(obj, spec, ctx)
        url = await self._url(obj, spec, ctx) if source is not None else None
        if source is None or url is None:
            return self.backoff.next()
        engine = self._engine(url, obj, spec, ctx)
        try:
            states = await asyncio.to_thread(engine.status, [source])
        except EngineError as exc:
            return await self._transient(obj, "DatabaseUnavailable", str(exc), ctx)
        mine = next((s for s in states if s.version == source.version), None)
        if mine is None or mine.state not in ("applied", "drifted", "failed", "incomplete"):
            message = f"version {spec.version} is not applied; nothing to roll back"
            await self._write(obj, ctx, status.phase(
                "RolledBack", "NotApplied", message, generation, obj.get("status") or {},
                checksum=None, rollbackAvailable=False))
            return self._settled(obj, ctx, "RolledBack")
        if restoring:
            return await migration_backup.start_restore(self, obj, spec, ctx)
        if source.down_sql is None:
            return await self._failed(
                obj, "NoRollbackSql",
                f"version {spec.version} has no rollbackSql; set spec.rollbackSql (or use "
                "rollbackStrategy: restore with a backup) to roll it back", ctx, None)
        await self._write(obj, ctx, status.phase("RollingBack", "RollingBack",
                                                 f"rolling back version {spec.version}",
                                                 generation, obj.get("status") or {}))
        ctx.emit("Normal", "RollingBack", f"Rolling back version {spec.version}")
        try:
            report = await asyncio.to_thread(engine.rollback, [source], versions=[source.version])
        except (ConnectionFailed, LockTimeout) as exc:
            return await self._transient(obj, "DatabaseUnavailable", str(exc), ctx)
        except EngineError as exc:
            return await self._failed(obj, type(exc).__name__, str(exc), ctx, None)
        result = report.results[0] if report.results else None
        fields = status.run_fields(report, result)
        if result is not None and not result.ok:
            ctx.observe("rollback_failed", result, result.duration_seconds)
            fields["lastError"] = status.last_error(result)
            return await self._failed(obj, "SQLError", status.error_summary(result), ctx, fields)
        self.backoff.reset()
        ctx.observe("rolled_back", result, result.duration_seconds if result else 0.0)
        message = f"rolled back version {spec.version}"
        await self._write(obj, ctx, status.phase(
            "RolledBack", "RolledBack", message, generation, obj.get("status") or {},
            **fields, checksum=None, rollbackAvailable=False, lastError=None))
        ctx.emit("Normal", "RolledBack", message)
        return self._settled(obj, ctx, "RolledBack")

    # -- preflight -------------------------------------------------------------------------

    async def _preflight(self, obj: dict[str, Any], spec: MigrationSpec,
                         source: MigrationSource, ctx: Context) -> float | None:
        """None when preflight passed; else the delay before looking again."""
        meta, raw_status = obj["metadata"], obj.get("status") or {}
        generation = meta["generation"]
        owner = Owner("Migration", meta["name"], meta["namespace"], meta["uid"], generation)
        prefix = job_name(owner, preflight.COMPONENT)
        current = raw_status.get("preflightJob") or ""
        name = current if current.startswith(prefix) else job_name(owner, preflight.COMPONENT)
        attempt = int(name[len(prefix) + 1:] or 0) if name != prefix else 0
        if raw_status.get("phase") != "Preflight" or current != name:
            await self._write(obj, ctx, status.phase(
                "Preflight", "PreflightRunning", f"preflight Job {name} is running",
                generation, raw_status, preflightJob=name))
        job = await ctx.api.job(meta["namespace"], name)
        if job is None:
            requires, expected = self._requirements(spec, ctx)
            plan = preflight.plan(spec, requires=requires, expected=expected)
            await ctx.api.ensure_configmap(preflight.configmap(owner, spec, plan))
            request = preflight.job_request(owner, spec, ctx.settings.job_active_deadline_seconds,
                                            attempt)
            job = await ctx.api.ensure_job(build_job(owner, request, ctx.settings))
            ctx.emit("Normal", "PreflightStarted", f"Started preflight Job {name}")
        finished = preflight.job_finished(job)
        if finished is None:
            return JOB_POLL
        pods = await ctx.api.job_pods(meta["namespace"], name)
        verdict = preflight.read_verdict(preflight.termination_message(pods),
                                         None if finished else preflight.job_failure(job))
        checks = [{"name": c.get("name", "?"), "passed": bool(c.get("passed")),
                   "message": str(c.get("message", ""))[:512]} for c in verdict.checks]
        if verdict.ok:
            await self._write(obj, ctx, status.phase(
                "Preflight", "PreflightPassed", "preflight checks passed", generation,
                obj.get("status") or {}, preflight=checks))
            return None
        message = f"preflight failed: {verdict.summary}"
        ctx.emit("Warning", "PreflightFailed", message)
        if not verdict.retryable:
            return await self._failed(obj, "PreflightFailed", message, ctx, {"preflight": checks})
        delay = self.backoff.next()
        next_name = job_name(owner, preflight.COMPONENT, attempt + 1)
        await self._write(obj, ctx, status.phase(
            "Preflight", "PreflightFailed", f"{message} (retrying in {delay:.0f}s)", generation,
            obj.get("status") or {}, preflight=checks, preflightJob=next_name))
        await ctx.api.delete_job(meta["namespace"], name)
        return delay

    def _requirements(self, spec: MigrationSpec, ctx: Context) -> tuple[list[str], dict[str, str]]:
        """Versions that must be applied first (dependencies and lower versions known here)."""
        mine = MigrationSource(spec.version, "", "").key
        names = set(spec.depends_on)
        requires = sorted({p.version for p in ctx.peers
                           if p.name in names or (p.wants_applied and p.key < mine)},
                          key=lambda v: MigrationSource(v, "", "").key)
        return requires, {}

    # -- shared pieces ---------------------------------------------------------------------

    async def _source(self, obj: dict[str, Any], spec: MigrationSpec,
                      ctx: Context) -> MigrationSource | None:
        """The engine's view of this migration, with SQL read from ConfigMaps if referenced."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        try:
            sql = spec.sql
            if sql is None and spec.sql_from is not None:
                ref = spec.sql_from.config_map_key_ref
                sql = await ctx.api.configmap_value(ns, ref.name, ref.key)
            down = spec.rollback_sql
            if down is None and spec.rollback_sql_from is not None:
                ref = spec.rollback_sql_from.config_map_key_ref
                down = await ctx.api.configmap_value(ns, ref.name, ref.key)
        except NotFound as exc:
            await self._transient(obj, "ConfigMapNotFound", str(exc), ctx)
            return None
        timeouts = spec.timeouts
        return MigrationSource(
            version=spec.version, description=spec.description or name, up_sql=sql or "",
            down_sql=down, transactional=spec.transactional, verify_sql=spec.verify_sql,
            lock_timeout=parse_duration(timeouts.lock) if timeouts and timeouts.lock else None,
            statement_timeout=(parse_duration(timeouts.statement)
                               if timeouts and timeouts.statement else None),
            path=f"Migration {ns}/{name}")

    async def _url(self, obj: dict[str, Any], spec: MigrationSpec, ctx: Context) -> str | None:
        ref = spec.database.secret_ref
        try:
            return await ctx.api.secret_value(obj["metadata"]["namespace"], ref.name, ref.key)
        except NotFound as exc:
            await self._transient(obj, "SecretNotFound", str(exc), ctx)
            return None

    def _engine(self, url: str, obj: dict[str, Any], spec: MigrationSpec, ctx: Context) -> Migrator:
        meta, settings = obj["metadata"], ctx.settings
        return Migrator(
            url, history_schema=spec.history_schema, application_name="kubemigrate-operator",
            lock_wait_seconds=settings.lock_wait_seconds,
            default_lock_timeout=settings.lock_timeout_seconds,
            default_statement_timeout=settings.statement_timeout_seconds or None,
            actor=f"kubemigrate-operator@{socket.gethostname()}",
            origin=Origin(meta["name"], meta["uid"], meta["generation"]),
            on_progress=ctx.logger.debug)

    async def _wait(self, obj: dict[str, Any], blocker: Blocker, ctx: Context) -> float:
        """Show why the migration waits (Pending) or cannot go on (Failed), once."""
        raw = obj.get("status") or {}
        generation = obj["metadata"]["generation"]
        phase = "Failed" if blocker.permanent or blocker.reason == "RollbackBlocked" else "Pending"
        if (raw.get("phase"), raw.get("reason"), raw.get("message"),
                raw.get("observedGeneration")) != (phase, blocker.reason, blocker.message,
                                                   generation):
            await self._write(obj, ctx, status.phase(phase, blocker.reason, blocker.message,
                                                     generation, raw,
                                                     waitingFor=blocker.waiting_for))
            if phase == "Failed":
                ctx.emit("Warning", blocker.reason, blocker.message)
        return QUEUED

    async def _transient(self, obj: dict[str, Any], reason: str, message: str,
                         ctx: Context) -> float:
        """A failure that time may cure: Reconciling with backoff, never Stalled."""
        raw = obj.get("status") or {}
        delay = self.backoff.next()
        phase = raw.get("phase") if raw.get("phase") in ("Preflight", "BackingUp", "Applying",
                                                           "RollingBack") else "Pending"
        await self._write(obj, ctx, status.phase(
            phase or "Pending", reason, f"{message} (retrying in {delay:.0f}s)",
            obj["metadata"]["generation"], raw))
        ctx.emit("Warning", reason, message)
        ctx.logger.warning("%s: %s; retrying in %.0fs", reason, message, delay)
        return delay

    async def _failed(self, obj: dict[str, Any], reason: str, message: str, ctx: Context,
                      fields: dict[str, Any] | None) -> float:
        """A failure only a change of spec cures: Failed and Stalled."""
        extra = dict(fields or {})
        extra.setdefault("lastError", {"message": message[:1024]})
        await self._write(obj, ctx, status.phase("Failed", reason, message,
                                                 obj["metadata"]["generation"],
                                                 obj.get("status") or {}, **extra))
        ctx.emit("Warning", reason, message)
        return self._settled(obj, ctx, "Failed")

    def _settled(self, obj: dict[str, Any], ctx: Context, phase: str) -> float:
        me = peer_of(obj)
        ctx.settle(Peer(me.name, me.version, me.database, phase, me.rollback, me.dry_run,
                        me.depends_on, me.created, True, me.uid))
        return IDLE
