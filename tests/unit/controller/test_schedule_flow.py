"""ScheduleFlow against the in-memory API, with a pinned clock: what one step creates, deletes
and writes, and that steps repeated (or a restarted operator) never create a second backup."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from kubemigrate.controller.build.scheduled_backup import backup_name
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.flows.schedule import ScheduleFlow
from kubemigrate.controller.kube.api import Invalid
from kubemigrate.controller.scheduling.history import SCHEDULED_AT
from unit.controller.conftest import FakeKube, Recorder

NS = "shop"
SCHEDULES, BACKUPS = "databasebackupschedules", "databasebackups"
CREATED = datetime(2024, 12, 20, 10, 0, 1, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 12, day, hour, minute, second, tzinfo=UTC)


def add_schedule(kube: FakeKube, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schedule": "0 3 * * *",
        "backupTemplate": {
            "spec": {
                "database": {"secretRef": {"name": "db"}},
                "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
            }
        },
    }
    body.update(spec)
    return kube.add(
        SCHEDULES,
        {
            "metadata": {
                "name": "nightly",
                "namespace": NS,
                "uid": "sched-uid",
                "creationTimestamp": "2024-12-20T10:00:01Z",
            },
            "spec": body,
        },
    )


def add_child(kube: FakeKube, when: datetime, phase: str | None, completed: str = "") -> str:
    name = backup_name("nightly", when)
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if completed:
        status["completedAt"] = completed
    kube.add(
        BACKUPS,
        {
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": {"kubemigrate.dev/schedule": "nightly"},
                "annotations": {SCHEDULED_AT: when.isoformat().replace("+00:00", "Z")},
                "ownerReferences": [{"uid": "sched-uid", "controller": True}],
            },
            "spec": {},
            "status": status,
        },
    )
    return name


def backups(kube: FakeKube) -> list[str]:
    return sorted(n for (p, _, n) in kube.objects if p == BACKUPS)


def step(
    kube: FakeKube, ctx: StepContext, now: datetime, flow: ScheduleFlow | None = None
) -> float:
    flow = flow or ScheduleFlow(clock=lambda: now)
    return asyncio.run(flow.step(kube.body(SCHEDULES, NS, "nightly"), ctx))


def test_a_due_run_creates_an_owned_backup_and_status_shows_it(
    kube: FakeKube, ctx: StepContext, recorder: Recorder
) -> None:
    add_schedule(kube)
    delay = step(kube, ctx, at(21, 3, 0, 5))
    name = backup_name("nightly", at(21, 3))
    assert backups(kube) == [name]
    owner = kube.body(BACKUPS, NS, name)["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("DatabaseBackupSchedule", "sched-uid")
    st = kube.status(SCHEDULES, NS, "nightly")
    assert st["lastScheduleTime"] == "2024-12-21T03:00:00Z"
    assert st["nextScheduleTime"] == "2024-12-22T03:00:00Z"
    assert st["active"] == [{"name": name, "time": "2024-12-21T03:00:00Z"}]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    assert recorder.reasons() == ["BackupCreated"]
    assert delay == 3600.0  # the next run is a day away: look again within the hour


def test_steps_repeated_or_after_a_restart_create_no_second_backup(
    kube: FakeKube, ctx: StepContext, recorder: Recorder
) -> None:
    add_schedule(kube)
    flow = ScheduleFlow(clock=lambda: at(21, 3, 0, 5))
    step(kube, ctx, at(21, 3, 0, 5), flow)
    patches = len(kube.patches)
    step(kube, ctx, at(21, 3, 0, 6), flow)
    assert len(kube.patches) == patches  # nothing changed, nothing written
    # A crash between creating the backup and writing status: a new operator starts afresh.
    kube.objects[(SCHEDULES, NS, "nightly")]["status"] = {}
    step(kube, ctx, at(21, 3, 0, 9))
    assert backups(kube) == [backup_name("nightly", at(21, 3))]


def test_forbid_holds_the_run_while_one_is_active(
    kube: FakeKube, ctx: StepContext, recorder: Recorder
) -> None:
    add_schedule(kube)
    running = add_child(kube, at(21, 3), "Running")
    kube.objects[(SCHEDULES, NS, "nightly")]["status"] = {
        "lastScheduleTime": "2024-12-21T03:00:00Z"
    }
    step(kube, ctx, at(22, 3, 0, 1))
    assert backups(kube) == [running]
    st = kube.status(SCHEDULES, NS, "nightly")
    assert st["reason"] == "RunHeld" and running in st["message"]
    assert st["lastScheduleTime"] == "2024-12-21T03:00:00Z"


def test_replace_deletes_the_active_one_and_starts_the_new_one(
    kube: FakeKube, ctx: StepContext, recorder: Recorder
) -> None:
    add_schedule(kube, concurrencyPolicy="Replace")
    add_child(kube, at(21, 3), "Running")
    kube.objects[(SCHEDULES, NS, "nightly")]["status"] = {
        "lastScheduleTime": "2024-12-21T03:00:00Z"
    }
    step(kube, ctx, at(22, 3, 0, 1))
    assert backups(kube) == [backup_name("nightly", at(22, 3))]
    assert "Replaced" in recorder.reasons()


def test_history_limits_prune_and_status_keeps_the_last_success(
    kube: FakeKube, ctx: StepContext, recorder: Recorder
) -> None:
    add_schedule(kube, successfulBackupsHistoryLimit=2, failedBackupsHistoryLimit=0)
    add_child(kube, at(20, 3), "Succeeded", "2024-12-20T03:01:00Z")
    add_child(kube, at(21, 3), "Succeeded", "2024-12-21T03:01:00Z")
    failed = add_child(kube, at(22, 3), "Failed", "2024-12-22T03:01:00Z")
    newest = add_child(kube, at(23, 3), "Succeeded", "2024-12-23T03:01:00Z")
    kube.objects[(SCHEDULES, NS, "nightly")]["status"] = {
        "lastScheduleTime": "2024-12-23T03:00:00Z"
    }
    step(kube, ctx, at(23, 12))
    assert backups(kube) == sorted([backup_name("nightly", at(21, 3)), newest])
    st = kube.status(SCHEDULES, NS, "nightly")
    assert st["lastSuccessfulBackup"] == {"name": newest, "time": "2024-12-23T03:01:00Z"}
    assert st["lastFailedBackup"] == {"name": failed, "time": "2024-12-22T03:01:00Z"}
    assert st["reason"] == "Scheduled"
    gauge = ctx.metrics.registry.get_sample_value(
        "kubemigrate_backup_last_success_timestamp_seconds",
        {"namespace": NS, "database": "db[url]"},
    )
    assert gauge == datetime(2024, 12, 23, 3, 1, tzinfo=UTC).timestamp()
    nxt = ctx.metrics.registry.get_sample_value(
        "kubemigrate_backup_schedule_next_run_timestamp_seconds",
        {"namespace": NS, "schedule": "nightly"},
    )
    assert nxt == at(24, 3).timestamp()


def test_a_failed_last_backup_is_not_ready(kube: FakeKube, ctx: StepContext) -> None:
    add_schedule(kube)
    add_child(kube, at(21, 3), "Succeeded", "2024-12-21T03:01:00Z")
    add_child(kube, at(22, 3), "Failed", "2024-12-22T03:01:00Z")
    kube.objects[(SCHEDULES, NS, "nightly")]["status"] = {
        "lastScheduleTime": "2024-12-22T03:00:00Z"
    }
    step(kube, ctx, at(22, 12))
    st = kube.status(SCHEDULES, NS, "nightly")
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions == {"Ready": "False", "Reconciling": "False", "Stalled": "False"}
    assert st["reason"] == "LastBackupFailed"


def test_a_seconds_field_without_the_operators_knob_stalls(
    kube: FakeKube, ctx: StepContext
) -> None:
    add_schedule(kube, schedule="*/5 * * * * *")
    step(kube, ctx, at(21, 3))
    st = kube.status(SCHEDULES, NS, "nightly")
    assert st["reason"] == "SecondsNotEnabled"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Stalled"] == "True"
    assert not backups(kube)


def test_suspended_creates_nothing(kube: FakeKube, ctx: StepContext) -> None:
    add_schedule(kube, suspend=True)
    step(kube, ctx, at(21, 3, 0, 1))
    st = kube.status(SCHEDULES, NS, "nightly")
    assert not backups(kube) and st["reason"] == "Suspended" and "nextScheduleTime" not in st


def test_a_run_past_the_deadline_is_skipped_with_an_event(
    kube: FakeKube, ctx: StepContext, recorder: Recorder
) -> None:
    add_schedule(kube, startingDeadlineSeconds=60)
    step(kube, ctx, at(21, 3, 5))
    assert not backups(kube)
    assert recorder.reasons() == ["MissedSchedule"]
    assert kube.status(SCHEDULES, NS, "nightly")["lastMissedTime"] == "2024-12-21T03:00:00Z"
    step(kube, ctx, at(21, 3, 6))
    assert recorder.reasons() == ["MissedSchedule"]  # reported once


def test_a_backup_the_api_server_refuses_is_retried_with_backoff(
    kube: FakeKube, ctx: StepContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_schedule(kube)

    async def refuse(plural: str, manifest: dict[str, Any]) -> dict[str, Any]:
        raise Invalid('DatabaseBackup "x" is invalid: metadata.labels: Invalid value')

    monkeypatch.setattr(kube, "create_custom", refuse)
    flow = ScheduleFlow(Backoff(1.0, 60.0), clock=lambda: at(21, 3, 0, 5))
    delays = [step(kube, ctx, at(21, 3, 0, 5), flow) for _ in range(3)]
    assert delays[0] < delays[2] <= 60 * 1.2  # backs off
    st = kube.status(SCHEDULES, NS, "nightly")
    assert st["reason"] == "BackupRefused" and "metadata.labels" in st["message"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Reconciling"] == "True"
    assert "lastScheduleTime" not in st and not backups(kube)
