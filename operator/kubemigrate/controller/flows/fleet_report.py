"""How a fleet rollout reads in status: counts while a wave runs, Halted past the budget, and
the end (every target at the version, or some failed). Written only when something moved, so a
fleet of thousands does not write status every poll; the metrics follow the same counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubemigrate.controller.build.fleet_status import Fold, WaveView
from kubemigrate.controller.build.jobs import Owner
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.flows.set_source import ReadSource
from kubemigrate.controller.flows.set_status import RESYNC, SetStatusWriter
from kubemigrate.controller.kube.fleet_api import FleetApi
from kubemigrate.controller.metrics import Metrics
from kubemigrate.engine import version_key
from kubemigrate.models.fleet import TargetCounts
from kubemigrate.models.migration_set import MigrationSetPhase, MigrationSetSpec, MigrationSetStatus


@dataclass(frozen=True)
class FleetRun:
    """What one step of a rollout works with."""

    owner: Owner
    spec: MigrationSetSpec
    source: ReadSource | None
    target: str | None
    key: str
    resolved: list[str]
    fleet: FleetApi
    metrics: Metrics | None = None


class FleetReport:
    """One fleet's status writes (one per daemon, over the set's writer)."""

    def __init__(self, writer: SetStatusWriter) -> None:
        self.writer = writer

    async def progress(
        self, obj: dict[str, Any], run: FleetRun, done: Fold, wave: int, ctx: StepContext
    ) -> None:
        """Status follows the ledgers while a wave runs, written only when a count moved."""
        counts = done.counts(run.resolved)
        current = self.writer.current(obj)
        if current.targets == counts and current.wave == wave and current.rollout_key == run.key:
            return
        phase = self._direction(run, done)
        paused = run.spec.plan.paused
        await self.writer.write(
            obj,
            ctx,
            self.fields(run, done, wave).model_copy(
                update={
                    "phase": phase,
                    "reason": "Paused" if paused else ("Canary" if wave == 0 else "RollingOut"),
                    "message": _summary(counts, wave, paused),
                }
            ),
        )

    async def halted(
        self, obj: dict[str, Any], run: FleetRun, done: Fold, last: WaveView, ctx: StepContext
    ) -> float:
        counts = done.counts(run.resolved)
        reason = (
            "CanaryFailed" if last.number == 0 and run.spec.plan.canary > 0 else "TooManyFailures"
        )
        names = ", ".join(e.name for e in done.errors[:5])
        message = (
            f"halted: {counts.failed} target(s) failed ({names}), more than the "
            f"{last.ledger.budget} tolerated; {counts.succeeded} of {counts.total} succeeded, "
            f"{counts.pending} not started; fix the failed targets, then change the spec "
            "(or set rollout.paused true, then false) to resume"
        )
        current = self.writer.current(obj)
        if (current.phase, current.reason, current.targets) == (
            MigrationSetPhase.HALTED,
            reason,
            counts,
        ):
            return RESYNC
        await self.writer.write(
            obj,
            ctx,
            self.fields(run, done, last.number).model_copy(
                update={"phase": MigrationSetPhase.HALTED, "reason": reason, "message": message}
            ),
        )
        ctx.emit("Warning", reason, message)
        ctx.metrics.fleet_waves.labels(run.owner.namespace, "halted").inc()
        return RESYNC

    async def settled(
        self, obj: dict[str, Any], run: FleetRun, done: Fold, ctx: StepContext
    ) -> float:
        counts = done.counts(run.resolved)
        wave = self.writer.current(obj).wave
        if counts.failed:
            phase, reason = MigrationSetPhase.FAILED, "TargetsFailed"
            message = (
                f"{counts.failed} of {counts.total} target(s) failed (at most "
                f"{run.spec.plan.max_failures} tolerated), {counts.succeeded} succeeded; fix "
                "them, then change the spec to retry them"
            )
        else:
            phase = (
                MigrationSetPhase.DRY_RUN_SUCCEEDED
                if run.spec.dry_run
                else MigrationSetPhase.SUCCEEDED
            )
            reason = "DryRunSucceeded" if run.spec.dry_run else "RolledOut"
            message = f"all {counts.total} target(s) at version {done.version or 'none'}"
        current = self.writer.current(obj)
        if (current.phase, current.reason, current.targets, current.rollout_key) == (
            phase,
            reason,
            counts,
            run.key,
        ) and current.observed_generation == run.owner.generation:
            return RESYNC
        change = self.fields(run, done, wave)
        await self.writer.write(
            obj,
            ctx,
            change.model_copy(update={"phase": phase, "reason": reason, "message": message}),
        )
        ctx.emit("Warning" if counts.failed else "Normal", reason, message)
        self.writer.backoff.reset()
        return RESYNC

    def fields(self, run: FleetRun, done: Fold, wave: int | None) -> MigrationSetStatus:
        """The fleet's status fields; the metrics follow the same counts."""
        counts = done.counts(run.resolved)
        self._metrics(run, counts)
        fields = MigrationSetStatus(
            targets=counts,
            failed_targets=list(done.errors),
            wave=wave,
            rollout_key=run.key,
            current_version=done.version,
            source_checksum=run.source.checksum if run.source else None,
            phase=MigrationSetPhase.APPLYING,
            reason="RollingOut",
        )
        if run.target is not None:
            fields.target_version = run.target
        return fields

    def _metrics(self, run: FleetRun, counts: TargetCounts) -> None:
        if run.metrics is not None:
            run.metrics.fleet(
                run.owner.namespace,
                run.owner.name,
                counts.model_dump(include={"succeeded", "failed", "running", "pending"}),
            )

    def _direction(self, run: FleetRun, done: Fold) -> MigrationSetPhase:
        if (
            run.target is not None
            and done.version
            and version_key(run.target) < version_key(done.version)
        ):
            return MigrationSetPhase.ROLLING_BACK
        return MigrationSetPhase.APPLYING


def _summary(counts: Any, wave: int, paused: bool) -> str:
    state = "paused: no new target starts; " if paused else ""
    return (
        f"{state}wave {wave}: {counts.succeeded} of {counts.total} target(s) succeeded, "
        f"{counts.failed} failed, {counts.running} running, {counts.pending} pending"
    )
