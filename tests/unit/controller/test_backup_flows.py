"""BackupFlow and RestoreFlow against the in-memory API: the Job started once, its result read
from the termination message, failures and timeouts, the queue, and what status shows; and the
backup file's cleanup on deletion."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import kopf
import pytest

from kubemigrate.controller.flows.backup import IDLE, JOB_POLL, QUEUED, BackupFlow
from kubemigrate.controller.flows.cleanup import delete_backup_file
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.flows.restore import RestoreFlow
from kubemigrate.controller.ordering.backups import BackupKey, BackupPeer, backup_peer_of
from kubemigrate.settings import Settings

NS = "shop"
BACKUPS, RESTORES = "databasebackups", "databaserestores"
SHA = "ab" * 32
BACKED_UP = json.dumps(
    {
        "ok": True,
        "location": "/backups/shop/nightly-x.dump",
        "format": "custom",
        "database": "shop",
        "sizeBytes": 2048,
        "sha256": SHA,
        "serverVersion": "15.18",
        "tables": 2,
        "rows": 7,
        "verified": True,
        "checks": ["pg_restore --list"],
        "startedAt": "2024-12-20T10:00:00.120000Z",
        "completedAt": "2024-12-20T10:00:02.370000Z",
        "durationSeconds": 2.25,
        "error": None,
    }
)


def backup(name: str = "nightly", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "DatabaseBackup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "database": {"secretRef": {"name": "db"}},
            "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
            **spec,
        },
    }


def restore(name: str = "undo", backup_name: str = "nightly", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "DatabaseRestore",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"backupRef": {"name": backup_name}, **spec},
    }


class BackupIndex(Mapping[BackupKey, list[BackupPeer]]):
    """kopf's index of DatabaseBackups by database, read from the fake API at each lookup."""

    def __init__(self, kube: Any) -> None:
        self.kube = kube

    def _peers(self) -> list[BackupPeer]:
        return [
            backup_peer_of(o)
            for (plural, _, _), o in self.kube.objects.items()
            if plural == BACKUPS
        ]

    def __getitem__(self, key: BackupKey) -> list[BackupPeer]:
        return [p for p in self._peers() if p.database == key]

    def __iter__(self) -> Any:
        return iter({p.database for p in self._peers()})

    def __len__(self) -> int:
        return len({p.database for p in self._peers()})


@pytest.fixture
def cluster(kube: Any) -> Any:
    kube.secrets[(NS, "db")] = {"url": "postgresql://app:secret@db/shop"}
    kube.claims.add((NS, "backups"))
    return kube


def run(
    flow: BackupFlow | RestoreFlow, kube: Any, ctx: StepContext, plural: str, name: str
) -> float:
    return asyncio.run(flow.step(kube.body(plural, NS, name), ctx))


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def backup_flow(kube: Any) -> BackupFlow:
    return BackupFlow(Backoff(1.0, 10.0), BackupIndex(kube))


def started_backup(
    kube: Any, ctx: StepContext, name: str = "nightly"
) -> tuple[BackupFlow, str, str]:
    """A backup whose Job has started; the Job's name and the backup's uid."""
    obj = kube.add(BACKUPS, backup(name))
    flow = backup_flow(kube)
    assert run(flow, kube, ctx, BACKUPS, name) == JOB_POLL
    return flow, f"{name}-backup-g1", obj["metadata"]["uid"]


# -- DatabaseBackup ------------------------------------------------------------------------------


def test_a_backup_runs_its_job_once_and_records_the_verified_file(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    flow, job, uid = started_backup(cluster, ctx)
    status = cluster.status(BACKUPS, NS, "nightly")
    assert (status["phase"], status["reason"], status["job"]) == ("Running", "BackingUp", job)
    assert status["startedAt"].endswith("Z") and "." not in status["startedAt"]
    location = f"pvc://backups/shop/nightly-{uid[:8]}.dump"
    args = cluster.job_args(NS, job)
    assert args[:3] == ["backup", "--output", f"/backups/shop/nightly-{uid[:8]}.dump"]
    assert "--verify" in args

    assert run(flow, cluster, ctx, BACKUPS, "nightly") == JOB_POLL  # still running
    assert len(cluster.jobs) == 1
    cluster.finish_job(NS, job, ok=True, message=BACKED_UP)
    assert run(flow, cluster, ctx, BACKUPS, "nightly") == IDLE

    status = cluster.status(BACKUPS, NS, "nightly")
    assert (status["phase"], status["reason"]) == ("Succeeded", "Verified")
    assert (status["location"], status["sha256"], status["sizeBytes"]) == (location, SHA, 2048)
    assert (status["verified"], status["serverVersion"]) == (True, "15.18")
    assert (status["completedAt"], status["durationSeconds"]) == (
        "2024-12-20T10:00:02.370000Z",
        2.25,
    )
    assert status["message"] == (
        f"backed up database shop (PostgreSQL 15.18): 2048 bytes to {location}, verified"
    )
    assert conditions(status) == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    assert cluster.patches[-1][2]["lastError"] is None
    assert recorder.reasons() == ["BackupStarted", "BackupSucceeded"]
    assert ctx.metrics.backups.labels(NS, "succeeded")._value.get() == 1
    assert run(flow, cluster, ctx, BACKUPS, "nightly") == IDLE
    assert len(cluster.patches) == 2


def test_a_failed_backup_job_records_no_usable_backup(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    flow, job, _ = started_backup(cluster, ctx)
    cluster.finish_job(
        NS,
        job,
        ok=False,
        message=json.dumps(
            {
                "ok": False,
                "reason": "ConnectionFailed",
                "error": "cannot connect to postgresql://app:***@db/shop: timeout",
            }
        ),
    )

    assert run(flow, cluster, ctx, BACKUPS, "nightly") == IDLE
    status = cluster.status(BACKUPS, NS, "nightly")
    assert (status["phase"], status["reason"]) == ("Failed", "ConnectionFailed")
    assert status["message"].startswith("backup failed: cannot connect")
    assert "location" not in status and "sha256" not in status
    assert status["verified"] is False
    assert status["lastError"]["message"].startswith("cannot connect")
    patch = cluster.patches[-1][2]
    assert patch["location"] is None and patch["sha256"] is None  # deleted, never left over
    assert conditions(status)["Stalled"] == "True"
    assert recorder.reasons()[-1] == "BackupFailed"
    assert ctx.metrics.backups.labels(NS, "failed")._value.get() == 1


def test_a_backup_job_killed_at_its_deadline_fails_with_the_job_controllers_reason(
    cluster: Any, ctx: StepContext
) -> None:
    flow, job, _ = started_backup(cluster, ctx)
    cluster.finish_job(NS, job, ok=False, reason="DeadlineExceeded")  # no termination message

    assert run(flow, cluster, ctx, BACKUPS, "nightly") == IDLE
    status = cluster.status(BACKUPS, NS, "nightly")
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert "durationSeconds" in status and "completedAt" in status


def test_an_unverified_backup_is_a_failed_backup(cluster: Any, ctx: StepContext) -> None:
    flow, job, _ = started_backup(cluster, ctx)
    cluster.finish_job(
        NS, job, ok=True, message=json.dumps({**json.loads(BACKED_UP), "verified": None})
    )
    run(flow, cluster, ctx, BACKUPS, "nightly")
    status = cluster.status(BACKUPS, NS, "nightly")
    assert (status["phase"], status["reason"]) == ("Failed", "NotVerified")
    assert "location" not in status


def test_backups_of_one_database_run_one_at_a_time(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    started_backup(cluster, ctx, "first")
    cluster.add(BACKUPS, backup("second"))
    flow = backup_flow(cluster)
    assert run(flow, cluster, ctx, BACKUPS, "second") == QUEUED
    status = cluster.status(BACKUPS, NS, "second")
    assert (status["phase"], status["reason"]) == ("Pending", "WaitingForBackup")
    assert "first" in status["message"]
    assert (NS, "second-backup-g1") not in cluster.jobs


def test_a_missing_secret_keeps_the_backup_pending(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    cluster.secrets.clear()
    cluster.add(BACKUPS, backup())
    delay = run(backup_flow(cluster), cluster, ctx, BACKUPS, "nightly")
    assert 0.8 <= delay <= 1.2
    status = cluster.status(BACKUPS, NS, "nightly")
    assert (status["phase"], status["reason"]) == ("Pending", "SecretNotFound")
    assert conditions(status)["Stalled"] == "False"
    assert recorder.reasons() == ["SecretNotFound"]
    assert not cluster.jobs


# -- DatabaseRestore -----------------------------------------------------------------------------


def succeeded_backup(kube: Any) -> str:
    """A backup that succeeded; its location."""
    obj = kube.add(BACKUPS, backup())
    location = f"pvc://backups/shop/nightly-{obj['metadata']['uid'][:8]}.dump"
    kube.objects[(BACKUPS, NS, "nightly")]["status"] = {
        "phase": "Succeeded",
        "location": location,
        "verified": True,
    }
    return location


def test_a_restore_runs_once_and_reports_what_arrived(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    succeeded_backup(cluster)
    cluster.add(RESTORES, restore(clean=True))
    flow = RestoreFlow(Backoff(1.0, 10.0))

    assert run(flow, cluster, ctx, RESTORES, "undo") == JOB_POLL
    status = cluster.status(RESTORES, NS, "undo")
    assert (status["phase"], status["reason"], status["job"]) == (
        "Running",
        "Restoring",
        "undo-restore-g1",
    )
    assert "clean" in status["message"]
    assert "--clean" in cluster.job_args(NS, "undo-restore-g1")

    cluster.finish_job(
        NS,
        "undo-restore-g1",
        ok=True,
        message=json.dumps(
            {
                "ok": True,
                "database": "shop",
                "tables": 2,
                "rows": 7,
                "matched": True,
                "mismatches": [],
                "completedAt": "2024-12-20T11:00:01Z",
                "durationSeconds": 1.0,
            }
        ),
    )
    assert run(flow, cluster, ctx, RESTORES, "undo") == IDLE
    status = cluster.status(RESTORES, NS, "undo")
    assert (status["phase"], status["reason"]) == ("Succeeded", "Restored")
    assert status["verification"] == {"tables": 2, "rows": 7, "matched": True, "mismatches": []}
    assert status["message"] == (
        "restored backup nightly into database shop: 2 tables, 7 rows, row counts match the backup"
    )
    assert (status["completedAt"], status["durationSeconds"]) == ("2024-12-20T11:00:01Z", 1.0)
    assert conditions(status)["Ready"] == "True"
    assert recorder.reasons() == ["RestoreStarted", "Restored"]
    assert run(flow, cluster, ctx, RESTORES, "undo") == IDLE
    assert len(cluster.jobs) == 1


def test_a_refused_restore_fails_with_the_jobs_reason(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    succeeded_backup(cluster)
    cluster.add(RESTORES, restore())
    flow = RestoreFlow(Backoff(1.0, 10.0))
    run(flow, cluster, ctx, RESTORES, "undo")
    cluster.finish_job(
        NS,
        "undo-restore-g1",
        ok=False,
        message=json.dumps(
            {"ok": False, "reason": "TargetNotEmpty", "error": "database shop is not empty"}
        ),
    )

    assert run(flow, cluster, ctx, RESTORES, "undo") == IDLE
    status = cluster.status(RESTORES, NS, "undo")
    assert (status["phase"], status["reason"]) == ("Failed", "TargetNotEmpty")
    assert status["message"] == "restore failed: database shop is not empty"
    assert status["lastError"] == {"message": "database shop is not empty"}
    assert conditions(status)["Stalled"] == "True"
    assert recorder.reasons()[-1] == "RestoreFailed"


def test_a_restore_waits_for_its_backup_and_fails_with_it(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    cluster.add(BACKUPS, backup())
    cluster.add(RESTORES, restore())
    flow = RestoreFlow(Backoff(1.0, 10.0))
    run(flow, cluster, ctx, RESTORES, "undo")
    status = cluster.status(RESTORES, NS, "undo")
    assert (status["phase"], status["reason"]) == ("Pending", "WaitingForBackup")
    assert recorder.events == []  # waiting is no warning

    cluster.objects[(BACKUPS, NS, "nightly")]["status"] = {
        "phase": "Failed",
        "message": "backup failed: x",
    }
    assert run(flow, cluster, ctx, RESTORES, "undo") == IDLE
    status = cluster.status(RESTORES, NS, "undo")
    assert (status["phase"], status["reason"]) == ("Failed", "BackupFailed")
    assert not cluster.jobs


# -- a backup's file on deletion ----------------------------------------------------------------


def test_deleting_a_backup_runs_a_cleanup_job_for_its_file(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    flow, job, uid = started_backup(cluster, ctx)
    cluster.finish_job(NS, job, ok=True, message=BACKED_UP)
    run(flow, cluster, ctx, BACKUPS, "nightly")
    body = cluster.body(BACKUPS, NS, "nightly")

    with pytest.raises(kopf.TemporaryError):  # kopf calls the handler again until it is done
        asyncio.run(delete_backup_file(body, ctx))
    assert (NS, job) in cluster.deleted_jobs
    cleanup = f"nightly-{uid[:8]}-cleanup-g0"
    assert cluster.job_args(NS, cleanup)[:2] == [
        "delete-backup",
        f"/backups/shop/nightly-{uid[:8]}.dump",
    ]
    cluster.finish_job(NS, cleanup, ok=True, message="{}")
    asyncio.run(delete_backup_file(body, ctx))
    assert recorder.events[-1] == (
        "Normal",
        "BackupFileDeleted",
        f"Deleted pvc://backups/shop/nightly-{uid[:8]}.dump",
    )


# -- a refused login: retried with backoff, then Stalled -----------------------------------------

REFUSED = json.dumps(
    {
        "ok": False,
        "reason": "AuthenticationFailed",
        "error": "cannot connect to postgresql://app@db/shop: password authentication failed",
    }
)


def test_a_refused_login_is_retried_then_stalls_the_backup(
    cluster: Any, ctx: StepContext, recorder: Any
) -> None:
    """The same rule as a Migration's (issue 10, defect 7): a few new Jobs with backoff, then
    Failed and Stalled, never a failed login every second, never failed at the first."""
    ctx = dataclasses.replace(ctx, settings=Settings(image="kubemigrate:test", login_attempts=3))
    flow, job, _ = started_backup(cluster, ctx)
    for attempt in (1, 2):
        cluster.finish_job(NS, job, ok=False, message=REFUSED)
        delay = run(flow, cluster, ctx, BACKUPS, "nightly")
        assert delay >= 0.8
        status = cluster.status(BACKUPS, NS, "nightly")
        assert (status["phase"], status["reason"]) == ("Pending", "AuthenticationFailed")
        assert status["failedLogins"] == attempt
        assert f"(attempt {attempt} of 3; retrying in " in status["message"]
        assert "password authentication failed" in status["message"]
        assert conditions(status)["Stalled"] == "False"
        assert (NS, job) in cluster.deleted_jobs
        assert run(flow, cluster, ctx, BACKUPS, "nightly") == JOB_POLL
        job = f"nightly-backup-g1-{attempt}"
        assert cluster.status(BACKUPS, NS, "nightly")["job"] == job
        assert (NS, job) in cluster.jobs

    cluster.finish_job(NS, job, ok=False, message=REFUSED)
    assert run(flow, cluster, ctx, BACKUPS, "nightly") == IDLE
    status = cluster.status(BACKUPS, NS, "nightly")
    assert (status["phase"], status["reason"]) == ("Failed", "AuthenticationFailed")
    assert status["failedLogins"] == 3
    assert "3 attempts in a row" in status["message"]
    assert conditions(status)["Stalled"] == "True"
    assert status["verified"] is False and "location" not in status
    assert run(flow, cluster, ctx, BACKUPS, "nightly") == IDLE
    assert len(cluster.jobs) == 1  # nothing started after it stalled


def test_a_login_that_works_at_the_next_attempt_clears_the_count(
    cluster: Any, ctx: StepContext
) -> None:
    flow, job, _ = started_backup(cluster, ctx)
    cluster.finish_job(NS, job, ok=False, message=REFUSED)
    run(flow, cluster, ctx, BACKUPS, "nightly")
    assert run(flow, cluster, ctx, BACKUPS, "nightly") == JOB_POLL
    cluster.finish_job(NS, "nightly-backup-g1-1", ok=True, message=BACKED_UP)
    run(flow, cluster, ctx, BACKUPS, "nightly")
    status = cluster.status(BACKUPS, NS, "nightly")
    assert status["phase"] == "Succeeded"
    assert "failedLogins" not in status
