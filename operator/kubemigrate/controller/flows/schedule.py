"""One DatabaseBackupSchedule's steps: read the spec, look at the schedule's own backups
(history limits, last success, active), start the run that is due by CronJob's rules
(`scheduling.runs`), write status, and sleep until the next fire time.

A step is idempotent: the backup of a scheduled time has a name of its own, so a step that runs
twice (a restart, a stale watch) finds the backup it created instead of creating another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kubemigrate.controller.build.labels import label_value
from kubemigrate.controller.build.scheduled_backup import backup_manifest, backup_name
from kubemigrate.controller.build.status import rfc3339
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.flows.schedule_status import ScheduleWriter, summary
from kubemigrate.controller.kube.api import Forbidden, Invalid
from kubemigrate.controller.ordering.backups import BackupKey
from kubemigrate.controller.scheduling import history
from kubemigrate.controller.scheduling.cron import Cron, InvalidSchedule, parse
from kubemigrate.controller.scheduling.runs import Plan, State, plan
from kubemigrate.models.schedule import DatabaseBackupScheduleSpec

BACKUPS = "databasebackups"
LONGEST_SLEEP = 3600.0
"""Look again at least hourly: a wall clock that jumped is noticed within the hour."""
SOONEST = 0.2
INVALID = 3600.0


class ScheduleFlow:
    """The steps of one DatabaseBackupSchedule (one instance per daemon)."""

    def __init__(
        self,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.writer = ScheduleWriter()
        self.backoff = backoff or Backoff(1.0, 60.0)
        self.clock = clock

    async def step(self, body: Mapping[str, Any], ctx: StepContext) -> float:
        """Do what is due; return seconds until the next look."""
        obj = self.writer.freshest(body)
        meta = obj["metadata"]
        try:
            spec = DatabaseBackupScheduleSpec.model_validate(obj.get("spec") or {})
            cron = parse(
                spec.schedule, spec.time_zone, seconds_allowed=ctx.settings.schedule_seconds
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in ("spec", *error["loc"]))
            return await self._invalid(obj, ctx, "InvalidSpec", f"{where}: {error['msg']}")
        except InvalidSchedule as exc:
            return await self._invalid(obj, ctx, exc.reason, str(exc))
        found = await ctx.api.list_custom(
            BACKUPS,
            meta["namespace"],
            f"{history.SCHEDULE_LABEL}={label_value(meta['name'])}",
        )
        kids = history.children(meta["uid"], found)
        await self._prune(obj, spec, kids, ctx)
        now = self.clock()
        decision = plan(cron, self._state(obj, spec, kids), now)
        started = await self._act(obj, spec, decision, ctx)
        if started is None and decision.start is not None:
            return self.backoff.next()  # refused: _act recorded why
        if started is not None:
            self.backoff.reset()
        change = summary(self.writer.current(obj), spec, kids, decision, started)
        await self.writer.write(obj, ctx, change)
        self._observe(obj, spec, ctx)
        return _sleep(cron, decision, self.clock())

    def _state(
        self, obj: Mapping[str, Any], spec: DatabaseBackupScheduleSpec, kids: list[history.Child]
    ) -> State:
        meta, current = obj["metadata"], self.writer.current(obj)
        created = history.parse_time(meta.get("creationTimestamp")) or self.clock()
        return State(
            created=created,
            last_scheduled=current.last_schedule_time,
            deadline=spec.starting_deadline_seconds,
            suspend=spec.suspend,
            policy=spec.concurrency_policy,
            active=[c.name for c in kids if c.active],
        )

    async def _prune(
        self,
        obj: Mapping[str, Any],
        spec: DatabaseBackupScheduleSpec,
        kids: list[history.Child],
        ctx: StepContext,
    ) -> None:
        """History limits: delete the oldest finished backups beyond them (the status keeps
        the newest success and failure whatever is deleted)."""
        ns = obj["metadata"]["namespace"]
        doomed = history.to_prune(
            kids, spec.successful_backups_history_limit, spec.failed_backups_history_limit
        )
        for name in doomed:
            ctx.emit("Normal", "Pruned", f"Deleting backup {name}: beyond the history limits")
            await ctx.api.delete_custom(BACKUPS, ns, name)

    async def _act(
        self,
        obj: dict[str, Any],
        spec: DatabaseBackupScheduleSpec,
        decision: Plan,
        ctx: StepContext,
    ) -> str | None:
        """Report missed runs, and create the due backup (after deleting the ones it replaces);
        the name of the backup created, or None."""
        meta, current = obj["metadata"], self.writer.current(obj)
        if decision.missed.too_many:
            ctx.emit(
                "Warning",
                "TooManyMissedTimes",
                "more than 100 scheduled times were missed (the operator was down, or the clock "
                "jumped); only the most recent is started. Set or decrease "
                "startingDeadlineSeconds, or check the clock",
            )
        if decision.too_late is not None and decision.too_late != current.last_missed_time:
            ctx.emit(
                "Warning",
                "MissedSchedule",
                f"missed the run scheduled at {rfc3339(decision.too_late)}: it could not start "
                f"within startingDeadlineSeconds ({spec.starting_deadline_seconds})",
            )
        if decision.start is None:
            return None
        for name in decision.replace:
            ctx.emit(
                "Normal", "Replaced", f"Deleting active backup {name} (concurrencyPolicy Replace)"
            )
            await ctx.api.delete_custom(BACKUPS, meta["namespace"], name)
        manifest = backup_manifest(obj, spec, decision.start)
        try:
            await ctx.api.create_custom(BACKUPS, manifest)
        except (Invalid, Forbidden) as exc:
            await self.writer.refused(obj, ctx, backup_name(meta["name"], decision.start), exc)
            return None
        name = str(manifest["metadata"]["name"])
        ctx.emit(
            "Normal",
            "BackupCreated",
            f"Created backup {name} for the run scheduled at {rfc3339(decision.start)}",
        )
        return name

    async def _invalid(
        self, obj: dict[str, Any], ctx: StepContext, reason: str, message: str
    ) -> float:
        await self.writer.invalid(obj, ctx, reason, message)
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        ctx.metrics.forget_schedule(ns, name)
        return INVALID

    def _observe(
        self, obj: Mapping[str, Any], spec: DatabaseBackupScheduleSpec, ctx: StepContext
    ) -> None:
        """The schedule's gauges; and the database's last success from status, so the gauge
        survives an operator restart."""
        meta, st = obj["metadata"], self.writer.current(obj)
        ns = meta["namespace"]
        ctx.metrics.schedule_observed(ns, meta["name"], st.next_schedule_time)
        success = st.last_successful_backup
        if success is not None and success.time is not None:
            ref = spec.backup_template.spec.database.secret_ref
            database = str(BackupKey(ns, ref.name, ref.key))
            ctx.metrics.saw_backup_success(ns, database, success.time.timestamp())


def _sleep(cron: Cron, decision: Plan, now: datetime) -> float:
    """Until the next fire time, at most an hour (a held run starts on a woken step: the
    active backup's events wake its owner)."""
    upcoming = decision.next_run or cron.next_after(now)
    if upcoming is None:
        return LONGEST_SLEEP
    return max(SOONEST, min(LONGEST_SLEEP, (upcoming - now).total_seconds()))
