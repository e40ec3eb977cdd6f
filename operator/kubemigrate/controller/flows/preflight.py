"""A Migration's preflight: run the preflight Job once per generation (again, as a new attempt,
after a failure that may pass later), and read its verdict into status.preflight.

The Job's name goes to status before the Job is created, so a restarted operator adopts the Job
it started instead of starting a second one.
"""

from __future__ import annotations

from typing import Any

from kubemigrate.controller.build import preflight as job
from kubemigrate.controller.build.jobs import Owner, build_job, job_failure, job_finished, job_name
from kubemigrate.controller.build.status import merged
from kubemigrate.controller.flows.base import REFUSED_LOGIN
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.flows.migration_status import EVENT_EVERY, MigrationStatusWriter
from kubemigrate.controller.kube.api import Forbidden, Invalid
from kubemigrate.controller.ordering.migrations import Peer
from kubemigrate.engine import MigrationSource
from kubemigrate.jobresult import Verdict, read_verdict, termination_message
from kubemigrate.models.migration import (
    MigrationPhase,
    MigrationSpec,
    MigrationStatus,
    PreflightCheck,
)

JOB_POLL = 2.0


async def gate(
    writer: MigrationStatusWriter,
    obj: dict[str, Any],
    spec: MigrationSpec,
    peers: list[Peer],
    ctx: StepContext,
) -> float | None:
    """None when preflight passed; else the delay before looking again."""
    meta, current = obj["metadata"], writer.current(obj)
    generation = meta["generation"]
    owner = Owner("Migration", meta["name"], meta["namespace"], meta["uid"], generation)
    prefix = job_name(owner, job.COMPONENT)
    recorded = current.preflight_job or ""
    name = recorded if recorded.startswith(prefix) else job_name(owner, job.COMPONENT)
    attempt = int(name[len(prefix) + 1 :] or 0) if name != prefix else 0
    found = await ctx.api.job(meta["namespace"], name)
    running = current.phase is MigrationPhase.PREFLIGHT and recorded == name
    if not running or (found is None and current.reason != "PreflightRunning"):
        await writer.write(
            obj,
            ctx,
            MigrationStatus(
                phase=MigrationPhase.PREFLIGHT,
                reason="PreflightRunning",
                message=f"preflight Job {name} is running"
                + (f" (attempt {attempt + 1})" if attempt else ""),
                preflight_job=name,
            ),
        )
    if found is None:
        try:
            found = await _start(owner, spec, peers, attempt, ctx)
        except Invalid as exc:
            return await writer.failed(
                obj, "PreflightJobInvalid", f"the API server refused the preflight Job: {exc}", ctx
            )
        except Forbidden as exc:
            return await writer.transient(
                obj, "PreflightJobForbidden", f"cannot create the preflight Job: {exc}", ctx
            )
        if attempt:  # the failed attempt's Job, if a kill kept the last step from deleting it
            await ctx.api.delete_job(meta["namespace"], job_name(owner, job.COMPONENT, attempt - 1))
        if attempt % EVENT_EVERY == 0:  # a retried preflight is reported with its failures
            ctx.emit("Normal", "PreflightStarted", f"Started preflight Job {name}")
    finished = job_finished(found)
    if finished is None:
        return JOB_POLL
    pods = await ctx.api.job_pods(meta["namespace"], name)
    verdict = read_verdict(termination_message(pods), None if finished else job_failure(found))
    checks = [
        PreflightCheck(
            name=str(c.get("name", "?")),
            passed=bool(c.get("passed")),
            message=str(c.get("message", ""))[:512],
        )
        for c in verdict.checks
    ]
    if verdict.ok:
        await writer.write(
            obj,
            ctx,
            MigrationStatus(
                phase=MigrationPhase.PREFLIGHT,
                reason="PreflightPassed",
                message="preflight checks passed",
                preflight=checks,
                failed_logins=None,
            ),
        )
        return None
    return await _failed(writer, obj, (owner, name, attempt), verdict, checks, ctx=ctx)


async def _failed(
    writer: MigrationStatusWriter,
    obj: dict[str, Any],
    ran: tuple[Owner, str, int],
    verdict: Verdict,
    checks: list[PreflightCheck],
    *,
    ctx: StepContext,
) -> float:
    """A preflight that did not pass (its Job ran: owner, name, attempt): Failed when no retry
    can help; else the next attempt (a new Job) after a backoff kept in status, a bounded number
    of them when the login was refused. The Warning Events are aggregated (see `retry`)."""
    owner, name, attempt = ran
    message = f"preflight failed: {verdict.summary}"
    if not verdict.retryable:
        return await writer.failed(
            obj, "PreflightFailed", message, ctx, MigrationStatus(preflight=checks)
        )
    found = MigrationStatus(preflight=checks)
    retry = MigrationStatus(
        phase=MigrationPhase.PREFLIGHT, preflight_job=job_name(owner, job.COMPONENT, attempt + 1)
    )
    if verdict.reason in REFUSED_LOGIN:
        delay = await writer.refused(obj, verdict.reason, message, ctx, found, retry=retry)
    else:
        delay = await writer.transient(obj, "PreflightFailed", message, ctx, merged(found, retry))
    if writer.current(obj).phase is MigrationPhase.PREFLIGHT:  # not stalled: the next attempt
        await ctx.api.delete_job(owner.namespace, name)
    return delay


async def _start(
    owner: Owner, spec: MigrationSpec, peers: list[Peer], attempt: int, ctx: StepContext
) -> dict[str, Any]:
    """Create the plan's ConfigMaps and the Job (or find them, after a restart)."""
    plan = job.plan(spec, requires=requirements(spec, peers), expected={})
    for configmap in job.configmaps(owner, spec, plan):
        await ctx.api.ensure_configmap(configmap)
    request = job.job_request(owner, spec, ctx.settings.job_active_deadline_seconds, attempt)
    return await ctx.api.ensure_job(build_job(owner, request, ctx.settings))


def requirements(spec: MigrationSpec, peers: list[Peer]) -> list[str]:
    """Versions that must be applied first (dependencies and lower versions known here)."""
    mine = MigrationSource(spec.version, "", "").key
    names = set(spec.depends_on)
    return sorted(
        {p.version for p in peers if p.name in names or (p.wants_applied and p.key < mine)},
        key=lambda v: MigrationSource(v, "", "").key,
    )
