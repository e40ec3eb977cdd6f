"""A fleet rollout: one MigrationSet's files taken to many databases (or schemas), in waves.

Each step resolves the targets, reads the rollout's waves (their ledgers say which targets
succeeded, failed or run), and either follows the running wave or decides the next one: the
canary first, then every target still to do, at most maxParallel at once. A wave is a Job of
workers that claim targets from its ledger, so the operator never runs a target itself and its
memory does not grow with the fleet. Everything is in the cluster: a restarted operator folds
the same ledgers and adopts the same Job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kubemigrate import fleetledger
from kubemigrate.controller.build import fleet_status, fleet_wave, set_job
from kubemigrate.controller.build.fleet_status import Fold, WaveView
from kubemigrate.controller.build.fleet_wave import Wave
from kubemigrate.controller.build.jobs import Owner, job_failure, job_finished
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.flows.fleet_targets import resolve
from kubemigrate.controller.flows.set_source import ReadSource, Refusal
from kubemigrate.controller.flows.set_status import RESYNC, SetStatusWriter
from kubemigrate.controller.kube.api import Forbidden, Invalid
from kubemigrate.controller.kube.fleet_api import FleetApi
from kubemigrate.controller.metrics import Metrics
from kubemigrate.engine import version_key
from kubemigrate.models.fleet import TargetCounts
from kubemigrate.models.migration_set import MigrationSetPhase, MigrationSetSpec, MigrationSetStatus

POLL = 2.0
"""How often a running wave's ledger is read."""
Refuse = Callable[[dict[str, Any], str, Refusal, StepContext], Awaitable[float]]
"""The set flow's way to say bad input once (Failed, or retried when time may cure it)."""


def rollout_key(spec: MigrationSetSpec, source: ReadSource | None, target: str | None) -> str:
    """What the rollout is for, without the generation: a spec bump resumes the same rollout
    (succeeded targets are never run again); new files or another target start a new one."""
    image = spec.source.image
    what = (
        source.checksum
        if source is not None
        else f"{image.reference}:{image.path}"
        if image
        else ""
    )
    assert spec.targets is not None
    return set_job.run_key(
        what,
        target,
        spec.history_schema,
        spec.dry_run,
        spec.targets.model_dump_json(by_alias=True),
    )


def _view(ledgers: Sequence[dict[str, Any]], lists: Mapping[str, list[str]]) -> list[WaveView]:
    """The waves whose ledger and target list are both there, in order."""
    views = []
    for cm in ledgers:
        meta = cm["metadata"]
        number = (meta.get("labels") or {}).get(fleet_wave.WAVE_LABEL, "")
        notes = meta.get("annotations") or {}
        if number not in lists:
            continue
        try:
            generation = int(notes.get(fleet_wave.GENERATION, "0"))
        except ValueError:
            generation = 0
        views.append(
            WaveView(
                number=int(number),
                targets=lists[number],
                ledger=fleetledger.read_ledger(cm.get("data")),
                generation=generation,
                closed=notes.get(fleet_wave.CLOSED) == "true",
            )
        )
    return sorted(views, key=lambda w: w.number)


class FleetFlow:
    """The rollout of one MigrationSet with spec.targets (one instance per daemon)."""

    def __init__(self, writer: SetStatusWriter) -> None:
        self.writer = writer
        self._lists: dict[str, list[str]] = {}
        """Wave target lists by ConfigMap name (immutable ConfigMaps: read once)."""

    async def step(
        self,
        obj: dict[str, Any],
        spec: MigrationSetSpec,
        source: ReadSource | None,
        ctx: StepContext,
        refuse: Refuse,
    ) -> float:
        owner = _owner(obj)
        assert spec.targets is not None
        target = spec.target_version or (source.newest if source is not None else None)
        if source is not None and target not in (None, "0") and target not in source.versions:
            wrong = Refusal(
                "InvalidTarget",
                f"targetVersion {target} is not a version of the source (newest: {source.newest})",
            )
            return await refuse(obj, "", wrong, ctx)
        fleet = FleetApi(ctx.api)
        resolved = await resolve(owner.namespace, spec.targets, ctx, fleet, owner.uid)
        if isinstance(resolved, Refusal):
            return await refuse(obj, "", resolved, ctx)
        key = rollout_key(spec, source, target)
        waves = await self._waves(fleet, owner, key)
        done = fleet_status.fold(waves)
        run = _Run(owner, spec, source, target, key, resolved, fleet, ctx.metrics)
        active = [w for w in waves if not w.closed]
        if active:
            return await self._follow(obj, run, active[-1], done, ctx)
        return await self._next(obj, run, waves, done, ctx)

    async def _waves(self, fleet: FleetApi, owner: Owner, key: str) -> list[WaveView]:
        """The rollout's waves: each ledger, with its target list (immutable, so read once)."""
        ledgers = await fleet.configmaps(
            owner.namespace, fleet_wave.rollout_selector(owner, key, "ledger")
        )
        lists: dict[str, list[str]] = {}
        for cm in ledgers:
            number = (cm["metadata"].get("labels") or {}).get(fleet_wave.WAVE_LABEL, "")
            if not number.isdigit():
                continue
            name = fleet_wave.targets_name(owner, key, int(number))
            if name not in self._lists:
                data = await fleet.configmap_data(owner.namespace, name)
                if data is None:
                    continue  # the operator stopped between the two ConfigMaps: started again
                text = data.get(fleetledger.TARGETS_KEY, "")
                self._lists[name] = text.split("\n") if text else []
            lists[number] = self._lists[name]
        return _view(ledgers, lists)

    # -- a wave under way ------------------------------------------------------------------

    async def _follow(
        self,
        obj: dict[str, Any],
        run: _Run,
        wave: WaveView,
        done: Fold,
        ctx: StepContext,
    ) -> float:
        owner, ns, fleet = run.owner, run.owner.namespace, run.fleet
        ledger = fleet_wave.ledger_name(owner, run.key, wave.number)
        if wave.ledger.paused != run.spec.plan.paused:
            paused = "true" if run.spec.plan.paused else "false"
            await fleet.patch_configmap(ns, ledger, {"data": {"paused": paused}})
        name = fleet_wave.wave_name(owner, run.key, wave.number)
        job = await ctx.api.job(ns, name)
        if job is None:  # the operator stopped between the ledger and the Job: finish starting
            return await self._start(obj, run, self._wave_of(run, wave), ctx)
        finished = job_finished(job)
        if finished is None:
            await self._progress(obj, run, done, wave.number, ctx)
            return POLL
        await fleet.patch_configmap(
            ns, ledger, {"metadata": {"annotations": {fleet_wave.CLOSED: "true"}}}
        )
        ctx.metrics.fleet_waves.labels(ns, "completed" if finished else "failed").inc()
        if not finished:
            message = f"wave {wave.number} (Job {name}) failed: {job_failure(job)}"
            return await self.writer.transient(obj, "WaveFailed", message, ctx)
        ctx.emit("Normal", "WaveFinished", f"Wave {wave.number} finished")
        return 0.5

    def _wave_of(self, run: _Run, view: WaveView) -> Wave:
        plan = run.spec.plan
        return Wave(
            run.key,
            view.number,
            view.targets,
            _workers(view.number, plan.canary, plan.max_parallel, len(view.targets)),
            view.ledger.budget,
            plan.paused,
        )

    async def _progress(
        self, obj: dict[str, Any], run: _Run, done: Fold, wave: int, ctx: StepContext
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
            self._fields(run, done, wave).model_copy(
                update={
                    "phase": phase,
                    "reason": "Paused" if paused else ("Canary" if wave == 0 else "RollingOut"),
                    "message": _summary(counts, wave, paused),
                }
            ),
        )

    # -- between waves ---------------------------------------------------------------------

    async def _next(
        self,
        obj: dict[str, Any],
        run: _Run,
        waves: list[WaveView],
        done: Fold,
        ctx: StepContext,
    ) -> float:
        generation = run.owner.generation
        last = waves[-1] if waves else None
        if (
            last is not None
            and len(last.ledger.failed) > last.ledger.budget
            and last.generation >= generation
        ):
            return await self._halted(obj, run, done, last, ctx)
        todo = fleet_status.remaining(run.resolved, done, generation)
        if not todo:
            return await self._settled(obj, run, done, ctx)
        if run.spec.plan.paused:
            await self._progress(obj, run, done, last.number if last else 0, ctx)
            return RESYNC
        if (
            waiting := await self._previous_rollout(obj, run, first=last is None, ctx=ctx)
        ) is not None:
            return waiting
        plan = run.spec.plan
        number = last.number + 1 if last is not None else 0
        canary = number == 0 and plan.canary > 0
        chosen = todo[: plan.canary] if canary else todo
        failed_elsewhere = len([n for n in done.failed if n in run.resolved and n not in todo])
        wave = Wave(
            run.key,
            number,
            chosen,
            _workers(number, plan.canary, plan.max_parallel, len(chosen)),
            0 if canary else max(0, plan.max_failures - failed_elsewhere),
            plan.paused,
        )
        return await self._start(obj, run, wave, ctx)

    async def _previous_rollout(
        self, obj: dict[str, Any], run: _Run, *, first: bool, ctx: StepContext
    ) -> float | None:
        """One rollout at a time: a wave of an earlier rollout (other files or target) still
        running is paused (it starts no new target) and waited for; before this rollout's
        first wave, the earlier rollouts' objects are deleted (the history is the record)."""
        ns, others = run.owner.namespace, fleet_wave.other_rollouts(run.owner, run.key)
        jobs = await run.fleet.jobs(ns, f"{others},{fleet_wave.PART_LABEL}=job")
        running = [j for j in jobs if job_finished(j) is None]
        for job in running:
            ledger = f"{job['metadata']['name']}-ledger"
            await run.fleet.patch_configmap(ns, ledger, {"data": {"paused": "true"}})
        if running:
            message = (
                f"waiting for Job {running[0]['metadata']['name']} of the previous rollout to "
                "finish its running targets (it starts no new one)"
            )
            current = self.writer.current(obj)
            if current.message != message:
                await self.writer.write(
                    obj,
                    ctx,
                    MigrationSetStatus(
                        phase=MigrationSetPhase.PENDING, reason="PreviousRollout", message=message
                    ),
                )
            return POLL
        if first:
            await run.fleet.retire(ns, others)
        return None

    async def _start(self, obj: dict[str, Any], run: _Run, wave: Wave, ctx: StepContext) -> float:
        """Create the wave's objects (each only if missing), the Job last."""
        owner, spec, fleet = run.owner, run.spec, run.fleet
        assert spec.targets is not None
        try:
            await fleet.ensure(fleet_wave.targets_configmap(owner, wave))
            # An operator stopped after this ConfigMap and before the ledger starts the wave
            # again with the list it wrote then (immutable), whatever the selector says now.
            stored = await fleet.configmap_data(
                owner.namespace, fleet_wave.targets_name(owner, wave.rollout, wave.number)
            )
            listed = (stored or {}).get(fleetledger.TARGETS_KEY)
            if listed is not None and listed.split("\n") != list(wave.targets):
                wave = replace(wave, targets=listed.split("\n"))
            schemas = spec.targets.schemas
            secrets = list(wave.targets) if schemas is None else [schemas.database.secret_ref.name]
            for manifest in (
                fleet_wave.ledger_configmap(owner, wave),
                fleet_wave.service_account(owner, wave),
                fleet_wave.role(owner, wave, secrets),
                fleet_wave.role_binding(owner, wave),
            ):
                await fleet.ensure(manifest)
            await ctx.api.ensure_job(
                fleet_wave.worker_job(
                    owner,
                    spec,
                    ctx.settings,
                    wave=wave,
                    keys={k: list(v) for k, v in (run.source.keys if run.source else {}).items()},
                    target=run.target,
                )
            )
        except Invalid as exc:
            return await self.writer.failed(
                obj, "WaveInvalid", f"the API server refused wave {wave.number}: {exc}", ctx
            )
        except Forbidden as exc:
            return await self.writer.transient(
                obj, "WaveForbidden", f"cannot start wave {wave.number}: {exc}", ctx
            )
        ctx.metrics.fleet_waves.labels(owner.namespace, "started").inc()
        what = "canary" if wave.number == 0 and spec.plan.canary > 0 else "wave"
        ctx.emit(
            "Normal",
            "WaveStarted",
            f"Started {what} {wave.number}: {len(wave.targets)} target(s), "
            f"{wave.workers} at once, {wave.budget} failure(s) tolerated",
        )
        return POLL

    async def _halted(
        self, obj: dict[str, Any], run: _Run, done: Fold, last: WaveView, ctx: StepContext
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
            self._fields(run, done, last.number).model_copy(
                update={"phase": MigrationSetPhase.HALTED, "reason": reason, "message": message}
            ),
        )
        ctx.emit("Warning", reason, message)
        ctx.metrics.fleet_waves.labels(run.owner.namespace, "halted").inc()
        return RESYNC

    async def _settled(self, obj: dict[str, Any], run: _Run, done: Fold, ctx: StepContext) -> float:
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
        change = self._fields(run, done, wave)
        await self.writer.write(
            obj,
            ctx,
            change.model_copy(update={"phase": phase, "reason": reason, "message": message}),
        )
        ctx.emit("Warning" if counts.failed else "Normal", reason, message)
        self.writer.backoff.reset()
        return RESYNC

    def _fields(self, run: _Run, done: Fold, wave: int | None) -> MigrationSetStatus:
        """The fleet's status fields; the metrics follow the same counts."""
        counts = done.counts(run.resolved)
        self._ctx_metrics(run, counts)
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

    def _ctx_metrics(self, run: _Run, counts: TargetCounts) -> None:
        if run.metrics is not None:
            run.metrics.fleet(
                run.owner.namespace,
                run.owner.name,
                counts.model_dump(include={"succeeded", "failed", "running", "pending"}),
            )

    def _direction(self, run: _Run, done: Fold) -> MigrationSetPhase:
        if (
            run.target is not None
            and done.version
            and version_key(run.target) < version_key(done.version)
        ):
            return MigrationSetPhase.ROLLING_BACK
        return MigrationSetPhase.APPLYING


@dataclass(frozen=True)
class _Run:
    """What one step of a rollout works with."""

    owner: Owner
    spec: MigrationSetSpec
    source: ReadSource | None
    target: str | None
    key: str
    resolved: list[str]
    fleet: FleetApi
    metrics: Metrics | None = None


def _workers(number: int, canary: int, max_parallel: int, targets: int) -> int:
    """Pods of a wave: the canary's targets all at once, else at most maxParallel."""
    limit = canary if number == 0 and canary > 0 else max_parallel
    return max(1, min(limit, targets))


def _summary(counts: Any, wave: int, paused: bool) -> str:
    state = "paused: no new target starts; " if paused else ""
    return (
        f"{state}wave {wave}: {counts.succeeded} of {counts.total} target(s) succeeded, "
        f"{counts.failed} failed, {counts.running} running, {counts.pending} pending"
    )


def _owner(obj: Mapping[str, Any]) -> Owner:
    meta = obj["metadata"]
    return Owner(
        "MigrationSet",
        meta["name"],
        meta["namespace"],
        meta["uid"],
        int(meta.get("generation", 1)),
    )
