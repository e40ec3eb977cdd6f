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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kubemigrate.controller.build import status
from kubemigrate.controller.build.restore_point import rollback_available
from kubemigrate.controller.flows import migration_backup, preflight
from kubemigrate.controller.flows.batch_watch import BatchWatch
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.flows.migration_status import IDLE, MigrationStatusWriter
from kubemigrate.controller.flows.migrator import Migrating, MigratorFactory, open_migrator
from kubemigrate.controller.kube.api import NotFound
from kubemigrate.controller.metrics import ObserveRun
from kubemigrate.controller.ordering.migrations import (
    Peer,
    PeerIndex,
    apply_blocker,
    peer_of,
    rollback_blocker,
)
from kubemigrate.controller.ordering.sets import SetIndex, set_claim
from kubemigrate.engine import (
    AuthenticationFailed,
    ConnectionFailed,
    EngineError,
    InvalidUrl,
    LockTimeout,
    MigrationResult,
    MigrationSource,
    RunReport,
    parse_duration,
)
from kubemigrate.models.migration import (
    DryRunResult,
    MigrationPhase,
    MigrationSpec,
    MigrationStatus,
    RollbackStrategy,
)

SETTLED = frozenset(
    {MigrationPhase.SUCCEEDED, MigrationPhase.ROLLED_BACK, MigrationPhase.DRY_RUN_SUCCEEDED}
)
BLOCKED_REASONS = frozenset({"DependencyCycle", "DuplicateVersion", "RollbackBlocked"})
APPLIED_STATES = frozenset({"applied", "drifted", "failed", "incomplete"})
"""Engine states of a version that a rollback can revert."""


@dataclass(frozen=True)
class _Ran:
    """An engine run that did not fail: its one result (None if nothing ran), the status
    fields it gives every outcome, and the metrics observer to report it to."""

    result: MigrationResult | None
    run: MigrationStatus
    observe: ObserveRun


@dataclass(frozen=True)
class _Stoppable:
    """How to stop an engine run if its Migration is deleted, and how to name it then."""

    migrator: Migrating
    what: str
    transactional: bool
    cancelled: str


class MigrationFlow:
    """The state machine of one Migration object (one instance per daemon)."""

    def __init__(
        self,
        backoff: Backoff,
        index: PeerIndex,
        migrator: MigratorFactory = open_migrator,
        sets: SetIndex | None = None,
    ) -> None:
        self.backoff, self.index, self.sets = backoff, index, sets
        self.writer = MigrationStatusWriter(backoff, index)
        self._open = migrator
        self._live: Mapping[str, Any] = {}
        """The body kopf keeps up to date for the daemon (spec.paused, read between batches)."""

    # -- the step --------------------------------------------------------------------------

    async def step(self, body: Mapping[str, Any], ctx: StepContext) -> float:
        """Do the next thing for this object; return seconds until the next look."""
        self._live = body
        obj = self.writer.freshest(body)
        current = self.writer.current(obj)
        generation = int(obj["metadata"].get("generation", 1))
        try:
            spec = MigrationSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            message = f"invalid spec: {where}: {first.get('msg')}".replace(": :", ":")
            await self.writer.write(
                obj,
                ctx,
                MigrationStatus(phase=MigrationPhase.FAILED, reason="InvalidSpec", message=message),
            )
            return IDLE
        if current.observed_generation == generation and (
            current.phase in SETTLED
            or (current.phase is MigrationPhase.FAILED and current.reason not in BLOCKED_REASONS)
        ):
            return IDLE
        if (due := self.writer.until_next_attempt(obj)) > 0:
            return due  # a retry's time, kept in status, holds whatever woke the daemon
        me = peer_of(obj)
        peers = list(self.index.get(me.database, ()))
        if spec.rollback:
            return await self._roll_back(obj, spec, me, peers, ctx)
        return await self._apply(obj, spec, me, peers, ctx)

    # -- apply and dry run -------------------------------------------------------------------

    async def _apply(
        self,
        obj: dict[str, Any],
        spec: MigrationSpec,
        me: Peer,
        peers: list[Peer],
        ctx: StepContext,
    ) -> float:
        blocker = apply_blocker(me, peers) or (
            set_claim(me, self.sets.get(me.database, ())) if self.sets is not None else None
        )
        if blocker:
            return await self.writer.wait(obj, blocker, ctx)
        # The Secret before any Job: a missing one is named now, not by a pod that cannot start.
        inputs = await self._inputs(obj, spec, ctx)
        if not isinstance(inputs, tuple):
            return inputs
        source, url = inputs
        current = self.writer.current(obj)
        past_preflight = current.observed_generation == obj["metadata"][
            "generation"
        ] and current.phase in (MigrationPhase.BACKING_UP, MigrationPhase.APPLYING)
        if spec.preflight.enabled and not spec.dry_run and not past_preflight:
            outcome = await preflight.gate(self.writer, obj, spec, peers, ctx)
            if outcome is not None:
                return outcome
        migrator = self._open(url, obj, spec, ctx)
        if spec.backup_enabled and not spec.dry_run:
            pending = await migration_backup.backup_first(self.writer, obj, spec, migrator, ctx)
            if pending is not None:
                return pending
        verb = "Dry-running" if spec.dry_run else "Applying"
        await self.writer.write(
            obj,
            ctx,
            MigrationStatus(
                phase=MigrationPhase.APPLYING,
                reason="DryRunning" if spec.dry_run else "Applying",
                message=f"{verb} version {spec.version}",
            ),
        )
        ctx.emit("Normal", "Applying", f"{verb} version {spec.version}")
        watch = self._watch(
            obj, ctx, migrator, MigrationPhase.APPLYING, verb=verb, version=spec.version
        )
        ran = await self._engine_run(
            obj,
            ctx,
            "failed",
            lambda: migrator.apply(
                [source], dry_run=spec.dry_run, allow_out_of_order=spec.allow_out_of_order
            ),
            _Stoppable(
                migrator,
                f"{'dry run' if spec.dry_run else 'apply'} of version {spec.version}",
                spec.transactional,
                "ApplyCancelled",
            ),
        )
        await watch.settle()
        if isinstance(ran, _Ran) and ran.result is None and not spec.dry_run:
            ran = await self._recorded(obj, ran, migrator, spec.version, ctx)
        if not isinstance(ran, _Ran):
            return ran
        return await self._applied(obj, spec, source, ran, ctx)

    def _watch(
        self,
        obj: dict[str, Any],
        ctx: StepContext,
        migrator: Migrating,
        phase: MigrationPhase,
        *,
        verb: str,
        version: str,
    ) -> BatchWatch:
        """Batched steps' progress into status and metrics, and spec.paused into the engine
        (for a migrator that runs batched steps: the engine's, not a test's stand-in)."""
        watch = BatchWatch(
            self.writer, obj, ctx, self._live, phase=phase, verb=verb, version=version
        )
        hook = getattr(migrator, "watch_batches", None)
        if hook is not None:
            hook(watch.on_batch, watch.paused)
        return watch

    async def _engine_run(
        self,
        obj: dict[str, Any],
        ctx: StepContext,
        failed_outcome: str,
        call: Callable[[], RunReport],
        stoppable: _Stoppable,
    ) -> _Ran | float:
        """Run call in a worker thread, where deleting the Migration can stop it (see
        `inflight`). An unreachable database or a held lock is transient, any other engine
        error and a failed migration are Failed (the delay is returned then)."""
        try:
            report = await ctx.inflight.run(
                obj["metadata"]["uid"],
                stoppable.what,
                call,
                stoppable.migrator.cancel,
                transactional=stoppable.transactional,
                cancelled=stoppable.cancelled,
            )
        except (ConnectionFailed, LockTimeout) as exc:
            return await self._unavailable(obj, exc, ctx)
        except EngineError as exc:
            return await self.writer.failed(obj, type(exc).__name__, str(exc), ctx)
        result = report.results[0] if report.results else None
        # The login worked: refused logins before it no longer count.
        run = status.merged(status.run_fields(report, result), MigrationStatus(failed_logins=None))
        observe = ctx.metrics.observer(obj["metadata"]["namespace"])
        if result is not None and not result.ok:
            observe(failed_outcome, result, result.duration_seconds)
            return await self.writer.failed(
                obj,
                "SQLError",
                status.error_summary(result),
                ctx,
                status.merged(run, MigrationStatus(last_error=status.last_error(result))),
            )
        self.backoff.reset()
        return _Ran(result, run, observe)

    async def _unavailable(self, obj: dict[str, Any], exc: EngineError, ctx: StepContext) -> float:
        """The database could not be used: a refused login (or a Secret value that is no URL)
        is retried a bounded number of times, an outage or a held lock for as long as it lasts."""
        if isinstance(exc, AuthenticationFailed | InvalidUrl):
            return await self.writer.refused(obj, exc.reason, str(exc), ctx)
        return await self.writer.transient(obj, "DatabaseUnavailable", str(exc), ctx)

    async def _recorded(
        self, obj: dict[str, Any], ran: _Ran, migrator: Migrating, version: str, ctx: StepContext
    ) -> _Ran | float:
        """ran, for a version found already applied, with the run fields of the run that applied
        it, from the history: a restarted operator (killed between the COMMIT and the status
        write) shows that run, not the one that found nothing to do."""
        try:
            applied = await asyncio.to_thread(migrator.last_applied, version)
        except EngineError as exc:
            return await self.writer.transient(obj, "DatabaseUnavailable", str(exc), ctx)
        if applied is None:  # baselined, or no run of ours recorded it
            return ran
        result = applied.result
        report = RunReport(
            applied.run_id,
            "apply",
            result.started_at,
            result.finished_at,
            (result,),
            ran.run.schema_version,
        )
        return _Ran(None, status.run_fields(report, result), ran.observe)

    async def _applied(
        self,
        obj: dict[str, Any],
        spec: MigrationSpec,
        source: MigrationSource,
        ran: _Ran,
        ctx: StepContext,
    ) -> float:
        result, run, observe = ran.result, ran.run, ran.observe
        if spec.dry_run:
            created = list(run.tables_created)
            rows = run.rows_affected if run.rows_affected is not None else 0
            message = (
                f"dry run of version {spec.version}: {rows} row(s), created "
                f"{', '.join(created) or 'no tables'}; rolled back"
            )
            await self.writer.write(
                obj,
                ctx,
                status.merged(
                    run,
                    MigrationStatus(
                        phase=MigrationPhase.DRY_RUN_SUCCEEDED,
                        reason="DryRunSucceeded",
                        message=message,
                        last_error=None,
                        dry_run=DryRunResult(
                            completed_at=run.completed_at,
                            checksum=source.checksum,
                            rows_affected=rows,
                            tables_created=created,
                            tables_altered=list(run.tables_altered),
                            tables_dropped=list(run.tables_dropped),
                        ),
                    ),
                ),
            )
            ctx.emit("Normal", "DryRunSucceeded", message)
            return self.writer.settled(obj, ctx, MigrationPhase.DRY_RUN_SUCCEEDED)
        if result is None:
            message = f"version {spec.version} was already applied"
            if run.rows_affected is not None and run.duration_seconds is not None:
                message += (
                    f", by run {run.run_id} in {status.seconds(run.duration_seconds)}, "
                    f"{run.rows_affected} row(s)"
                )
            reason = "AlreadyApplied"
        else:
            observe("applied", result, result.duration_seconds)
            message = (
                f"applied version {spec.version} in "
                f"{status.seconds(result.duration_seconds)}, "
                f"{result.rows_affected} row(s)"
            )
            reason = "Applied"
        available = rollback_available(spec, source.down_sql is not None, self.writer.current(obj))
        await self.writer.write(
            obj,
            ctx,
            status.merged(
                run,
                MigrationStatus(
                    phase=MigrationPhase.SUCCEEDED,
                    reason=reason,
                    message=message,
                    last_error=None,
                    checksum=source.checksum,
                    rollback_available=available,
                ),
            ),
        )
        ctx.emit("Normal", reason, message)
        return self.writer.settled(obj, ctx, MigrationPhase.SUCCEEDED)

    # -- rollback --------------------------------------------------------------------------

    async def _roll_back(
        self,
        obj: dict[str, Any],
        spec: MigrationSpec,
        me: Peer,
        peers: list[Peer],
        ctx: StepContext,
    ) -> float:
        blocker = rollback_blocker(me, peers)
        if blocker:
            return await self.writer.wait(obj, blocker, ctx)
        restoring = spec.rollback_strategy is RollbackStrategy.RESTORE
        if restoring and (pending := await migration_backup.follow_restore(self.writer, obj, ctx)):
            return pending
        inputs = await self._inputs(obj, spec, ctx)
        if not isinstance(inputs, tuple):
            return inputs
        source, url = inputs
        migrator = self._open(url, obj, spec, ctx)
        try:
            states = await asyncio.to_thread(migrator.status, [source])
        except EngineError as exc:
            return await self._unavailable(obj, exc, ctx)
        mine = next((s for s in states if s.version == source.version), None)
        if mine is None or mine.state not in APPLIED_STATES:
            await self.writer.write(
                obj,
                ctx,
                MigrationStatus(
                    phase=MigrationPhase.ROLLED_BACK,
                    reason="NotApplied",
                    message=f"version {spec.version} is not applied; nothing to roll back",
                    checksum=None,
                    rollback_available=False,
                ),
            )
            return self.writer.settled(obj, ctx, MigrationPhase.ROLLED_BACK)
        if restoring:
            return await migration_backup.start_restore(self.writer, obj, spec, ctx)
        if source.down_sql is None:
            return await self.writer.failed(
                obj,
                "NoRollbackSql",
                f"version {spec.version} has no rollbackSql; set spec.rollbackSql (or use "
                "rollbackStrategy: restore with a backup) to roll it back",
                ctx,
            )
        return await self._run_rollback(obj, spec, source, migrator, ctx)

    async def _run_rollback(
        self,
        obj: dict[str, Any],
        spec: MigrationSpec,
        source: MigrationSource,
        migrator: Migrating,
        ctx: StepContext,
    ) -> float:
        await self.writer.write(
            obj,
            ctx,
            MigrationStatus(
                phase=MigrationPhase.ROLLING_BACK,
                reason="RollingBack",
                message=f"rolling back version {spec.version}",
            ),
        )
        ctx.emit("Normal", "RollingBack", f"Rolling back version {spec.version}")
        watch = self._watch(
            obj,
            ctx,
            migrator,
            MigrationPhase.ROLLING_BACK,
            verb="Rolling back",
            version=spec.version,
        )
        ran = await self._engine_run(
            obj,
            ctx,
            "rollback_failed",
            lambda: migrator.rollback([source], versions=[source.version]),
            _Stoppable(migrator, f"rollback of version {spec.version}", True, "RollbackCancelled"),
        )
        await watch.settle()
        if not isinstance(ran, _Ran):
            return ran
        result, run, observe = ran.result, ran.run, ran.observe
        observe("rolled_back", result, result.duration_seconds if result else 0.0)
        message = f"rolled back version {spec.version}"
        await self.writer.write(
            obj,
            ctx,
            status.merged(
                run,
                MigrationStatus(
                    phase=MigrationPhase.ROLLED_BACK,
                    reason="RolledBack",
                    message=message,
                    checksum=None,
                    rollback_available=False,
                    last_error=None,
                ),
            ),
        )
        ctx.emit("Normal", "RolledBack", message)
        return self.writer.settled(obj, ctx, MigrationPhase.ROLLED_BACK)

    # -- what the engine needs -------------------------------------------------------------

    async def _inputs(
        self, obj: dict[str, Any], spec: MigrationSpec, ctx: StepContext
    ) -> tuple[MigrationSource, str] | float:
        """What the engine needs: the migration (SQL read from ConfigMaps if referenced) and the
        database URL from its Secret. A missing ConfigMap, Secret or key is named in status and
        retried with backoff: the delay is returned then."""
        try:
            source = await self._source(obj, spec, ctx)
        except NotFound as exc:
            return await self.writer.transient(obj, exc.reason("ConfigMap"), str(exc), ctx)
        ref = spec.database.secret_ref
        try:
            url = await ctx.api.secret_value(obj["metadata"]["namespace"], ref.name, ref.key)
        except NotFound as exc:
            return await self.writer.transient(obj, exc.reason("Secret"), str(exc), ctx)
        return source, url

    async def _source(
        self, obj: dict[str, Any], spec: MigrationSpec, ctx: StepContext
    ) -> MigrationSource:
        """The engine's view of this migration, with SQL read from ConfigMaps if referenced
        (NotFound if one is missing)."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        sql = spec.sql
        if sql is None and spec.sql_from is not None:
            ref = spec.sql_from.config_map_key_ref
            sql = await ctx.api.configmap_value(ns, ref.name, ref.key)
        down = spec.rollback_sql
        if down is None and spec.rollback_sql_from is not None:
            ref = spec.rollback_sql_from.config_map_key_ref
            down = await ctx.api.configmap_value(ns, ref.name, ref.key)
        timeouts = spec.timeouts
        return MigrationSource(
            version=spec.version,
            description=spec.description or name,
            up_sql=sql or "",
            down_sql=down,
            transactional=spec.transactional,
            verify_sql=spec.verify_sql,
            lock_timeout=parse_duration(timeouts.lock) if timeouts and timeouts.lock else None,
            statement_timeout=(
                parse_duration(timeouts.statement) if timeouts and timeouts.statement else None
            ),
            path=f"Migration {ns}/{name}",
        )
