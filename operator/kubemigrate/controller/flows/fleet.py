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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kubemigrate import fleetledger
from kubemigrate.controller.build import fleet_status, fleet_wave, set_job
from kubemigrate.controller.build.fleet_status import Fold, WaveView
from kubemigrate.controller.build.fleet_wave import Wave
from kubemigrate.controller.build.jobs import Owner, job_failure, job_finished
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.flows.fleet_report import FleetReport, FleetRun
from kubemigrate.controller.flows.fleet_targets import resolve
from kubemigrate.controller.flows.set_source import ReadSource, Refusal, source_identity
from kubemigrate.controller.flows.set_status import RESYNC, SetStatusWriter
from kubemigrate.controller.kube.api import Forbidden, Invalid
from kubemigrate.controller.kube.fleet_api import FleetApi
from kubemigrate.models.migration_set import MigrationSetPhase, MigrationSetSpec, MigrationSetStatus

POLL = 2.0
"""How often a running wave's ledger is read."""
Refuse = Callable[[dict[str, Any], str, Refusal, StepContext], Awaitable[float]]
"""The set flow's way to say bad input once (Failed, or retried when time may cure it)."""


def rollout_key(spec: MigrationSetSpec, source: ReadSource | None, target: str | None) -> str:
    """What the rollout is for, without the generation: a spec bump resumes the same rollout
    (succeeded targets are never run again); new files or another target start a new one."""
    what = source_identity(spec, source)
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
        self.report = FleetReport(writer)
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
        owner = Owner.of("MigrationSet", obj)
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
        run = FleetRun(owner, spec, source, target, key, resolved, fleet, ctx.metrics)
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
        run: FleetRun,
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
        finished, why = job_finished(job), job_failure(job)
        bound = ctx.settings.job_active_deadline_seconds
        if finished is None and wave.ledger.next == 0 and _age(job) > bound:
            # Its pods never started a target (unschedulable, image not pulled, ...): the
            # wave fails within the same bound as any Job, and is retried with backoff.
            await ctx.api.delete_job(ns, name)
            finished, why = False, f"no worker started a target within {bound}s"
        if finished is None:
            await self.report.progress(obj, run, done, wave.number, ctx)
            return POLL
        await fleet.patch_configmap(
            ns, ledger, {"metadata": {"annotations": {fleet_wave.CLOSED: "true"}}}
        )
        ctx.metrics.fleet_waves.labels(ns, "completed" if finished else "failed").inc()
        if not finished:
            message = f"wave {wave.number} (Job {name}) failed: {why}"
            return await self.writer.transient(obj, "WaveFailed", message, ctx)
        ctx.emit("Normal", "WaveFinished", f"Wave {wave.number} finished")
        return 0.5

    def _wave_of(self, run: FleetRun, view: WaveView) -> Wave:
        plan = run.spec.plan
        return Wave(
            run.key,
            view.number,
            view.targets,
            _workers(view.number, plan.canary, plan.max_parallel, len(view.targets)),
            view.ledger.budget,
            plan.paused,
        )

    # -- between waves ---------------------------------------------------------------------

    async def _next(
        self,
        obj: dict[str, Any],
        run: FleetRun,
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
            return await self.report.halted(obj, run, done, last, ctx)
        todo = fleet_status.remaining(run.resolved, done, generation)
        if not todo:
            return await self.report.settled(obj, run, done, ctx)
        if run.spec.plan.paused:
            await self.report.progress(obj, run, done, last.number if last else 0, ctx)
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
        self, obj: dict[str, Any], run: FleetRun, *, first: bool, ctx: StepContext
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

    async def _start(
        self, obj: dict[str, Any], run: FleetRun, wave: Wave, ctx: StepContext
    ) -> float:
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


def _age(job: Mapping[str, Any]) -> float:
    """Seconds since the Job was created (0 when the API did not say)."""
    created = (job.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return 0.0
    when = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
    return (datetime.now(UTC) - when).total_seconds()


def _workers(number: int, canary: int, max_parallel: int, targets: int) -> int:
    """Pods of a wave: the canary's targets all at once, else at most maxParallel."""
    limit = canary if number == 0 and canary > 0 else max_parallel
    return max(1, min(limit, targets))
