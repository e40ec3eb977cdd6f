"""A DatabaseBackupSchedule's status: what a step writes (`summary`), and its writer, which
adds the kstatus conditions and observedGeneration and sends a merge patch only when something
changed (a schedule's daemon steps on every event of its backups)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from kubemigrate.controller.build.conditions import Health, build_conditions
from kubemigrate.controller.build.status import clip, now, rfc3339
from kubemigrate.controller.flows.base import HasApi, freshest_of
from kubemigrate.controller.scheduling import history
from kubemigrate.controller.scheduling.runs import Plan
from kubemigrate.models.backup import BackupPhase
from kubemigrate.models.schedule import (
    BackupRecord,
    DatabaseBackupScheduleSpec,
    DatabaseBackupScheduleStatus,
)

PLURAL = "databasebackupschedules"


def _newer(found: history.Child | None, before: BackupRecord | None) -> BackupRecord | None:
    """The record of found, if it is newer than before (status keeps the newest even after the
    history limits deleted the backup)."""
    if found is None:
        return before
    record = BackupRecord(name=found.name, time=found.completed or found.scheduled)
    if before is None or before.time is None or (record.time and record.time >= before.time):
        return record
    return before


def _failing(success: BackupRecord | None, failure: BackupRecord | None) -> bool:
    if failure is None or failure.time is None:
        return False
    return success is None or success.time is None or failure.time > success.time


def _active(kids: Sequence[history.Child], started: str | None, plan: Plan) -> list[BackupRecord]:
    active = [BackupRecord(name=c.name, time=c.scheduled) for c in kids if c.active]
    if started is not None and started not in {r.name for r in active}:
        active.append(BackupRecord(name=started, time=plan.start))
    return [r for r in active if r.name not in plan.replace][:100]


def summary(
    current: DatabaseBackupScheduleStatus,
    spec: DatabaseBackupScheduleSpec,
    kids: Sequence[history.Child],
    plan: Plan,
    started: str | None,
) -> tuple[DatabaseBackupScheduleStatus, Health]:
    """The whole status after a step (conditions aside), and what its conditions say."""
    success = _newer(history.newest(kids, BackupPhase.SUCCEEDED), current.last_successful_backup)
    failure = _newer(history.newest(kids, BackupPhase.FAILED), current.last_failed_backup)
    active = _active(kids, started, plan)
    change = DatabaseBackupScheduleStatus(
        last_schedule_time=plan.start if started else current.last_schedule_time,
        next_schedule_time=plan.next_run,
        last_successful_backup=success,
        last_failed_backup=failure,
        last_missed_time=plan.too_late or current.last_missed_time,
        active=active,
    )
    return change, _health(spec, plan, success, failure, active)


def _when(moment: datetime | None) -> str:
    return rfc3339(moment) if moment is not None else "never (no such time in 50 years)"


def _health(
    spec: DatabaseBackupScheduleSpec,
    plan: Plan,
    success: BackupRecord | None,
    failure: BackupRecord | None,
    active: Sequence[BackupRecord],
) -> Health:
    if spec.suspend:
        return Health(True, False, False, "Suspended", "suspended: no new backups are created")
    upcoming = f"next backup at {_when(plan.next_run)}"
    if _failing(success, failure):
        assert failure is not None
        return Health(
            False,
            False,
            False,
            "LastBackupFailed",
            f"the last backup, {failure.name}, failed; {upcoming}",
        )
    if plan.held is not None:
        names = ", ".join(r.name for r in active) or "an earlier backup"
        return Health(
            True,
            False,
            False,
            "RunHeld",
            f"the run scheduled at {rfc3339(plan.held)} waits: {names} is still active "
            "(concurrencyPolicy Forbid)",
        )
    return Health(True, False, False, "Scheduled", upcoming)


class ScheduleWriter:
    """Status of one DatabaseBackupSchedule; its last write is remembered until the watch
    catches up (as `flows.base.StatusWriter` does for the other kinds)."""

    def __init__(self) -> None:
        self._latest: dict[str, Any] | None = None

    def current(self, obj: Mapping[str, Any]) -> DatabaseBackupScheduleStatus:
        try:
            return DatabaseBackupScheduleStatus.model_validate(obj.get("status") or {})
        except ValidationError:  # written by hand: start afresh rather than wedge
            return DatabaseBackupScheduleStatus()

    async def write(
        self,
        obj: dict[str, Any],
        ctx: HasApi,
        change: tuple[DatabaseBackupScheduleStatus, Health],
    ) -> None:
        """Patch the whole status (None deletes a field) if it differs from obj's."""
        status, health = change
        meta, before = obj["metadata"], self.current(obj)
        generation = int(meta.get("generation", 1))
        message = clip(health.message)
        full = status.model_copy(
            update={
                "reason": health.reason,
                "message": message,
                "observed_generation": generation,
                "conditions": build_conditions(
                    Health(
                        health.ready, health.reconciling, health.stalled, health.reason, message
                    ),
                    generation,
                    now(),
                    before.conditions,
                ),
            }
        )
        mine = full.model_dump(by_alias=True, mode="json", exclude_none=True)
        if mine == before.model_dump(by_alias=True, mode="json", exclude_none=True):
            return
        body = {name: getattr(full, name) for name in DatabaseBackupScheduleStatus.model_fields}
        patch = DatabaseBackupScheduleStatus(**body).model_dump(by_alias=True, mode="json")
        updated = await ctx.api.patch_status(PLURAL, meta["namespace"], meta["name"], patch)
        if updated is not None:
            self._latest = updated
            obj["status"] = updated.get("status") or {}
            obj["metadata"] = updated["metadata"]

    async def invalid(self, obj: dict[str, Any], ctx: HasApi, reason: str, message: str) -> None:
        """Stalled until the spec changes: nothing is scheduled."""
        current = self.current(obj).model_copy(update={"next_schedule_time": None})
        await self.write(obj, ctx, (current, Health(False, False, True, reason, message)))

    async def refused(self, obj: dict[str, Any], ctx: HasApi, name: str, exc: Exception) -> None:
        """The API server refused the backup (invalid template labels, a namespace being
        deleted): not Ready, retried."""
        reason = "BackupRefused"
        message = f"the API server refused to create backup {name}: {exc}"
        await self.write(obj, ctx, (self.current(obj), Health(False, True, False, reason, message)))

    def freshest(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The live body, or our last write if the watch has not delivered it yet."""
        return freshest_of(body, self._latest)
