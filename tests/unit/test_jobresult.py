"""The Job result contract: every result a Job writes is read back as the operator reads it,
through a pod's termination message, and an oversized one is shortened to fit 4 KiB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubemigrate import jobresult

BACKUP: jobresult.Backup = {
    "ok": True,
    "location": "/backups/shop/nightly-01234567.dump",
    "format": "custom",
    "database": "shop",
    "sizeBytes": 4096,
    "sha256": "ab" * 32,
    "serverVersion": "15.18",
    "tables": 2,
    "rows": 7,
    "verified": True,
    "startedAt": "2024-05-01T02:00:00Z",
    "completedAt": "2024-05-01T02:00:03Z",
    "durationSeconds": 3.25,
    "error": None,
    "checks": ["sha256 and size match the sidecar", "pg_restore --list reads 18 entries"],
    "verification": {"tables": 2, "rows": 7, "matched": True, "mismatches": []},
}
VERIFY_FAILED: jobresult.VerifyBackup = {
    "ok": False,
    "location": "/backups/x.dump",
    "format": "plain",
    "error": "verification failed: /backups/x.dump is not a complete pg_dump SQL script",
    "verified": False,
    "checks": [],
    "reason": "VerificationFailed",
}
RESTORE_MISMATCH: jobresult.Restore = {
    "ok": False,
    "location": "/backups/x.dump",
    "database": "shop",
    "tables": 2,
    "rows": 5,
    "matched": False,
    "mismatches": [{"table": "public.a", "expectedRows": 3, "actualRows": 1}],
    "startedAt": "2024-05-01T02:00:00Z",
    "completedAt": "2024-05-01T02:00:01Z",
    "durationSeconds": 1.0,
    "error": "restored, but row counts differ: public.a has 1 rows, expected 3",
    "reason": "RowCountMismatch",
}
DELETED: jobresult.DeleteBackup = {
    "ok": True,
    "location": "/backups/x.dump",
    "removed": ["x.dump", "x.dump.meta.json"],
    "error": None,
}
FAILURE: jobresult.Failure = {
    "ok": False,
    "reason": "ConnectionFailed",
    "error": "cannot connect to postgresql://u:****@db/shop: password authentication failed",
}
PREFLIGHT: jobresult.Preflight = {
    "ok": False,
    "retryable": True,
    "serverVersion": "15.18",
    "checks": [
        {"name": "connectivity", "passed": True, "message": "PostgreSQL 15.18"},
        {"name": "lock-blockers", "passed": False, "message": "locks held on users: pid 42"},
    ],
    "dryRun": {"ran": True, "rows": 3},
}


def written(tmp_path: Path, result: jobresult.JobResult) -> str:
    """result as the operator finds it: written to the log, then in a terminated pod's status."""
    log = tmp_path / "termination-log"
    jobresult.write(log, result)
    pod = {
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "finishedAt": "2024-05-01T02:00:04Z",
                            "message": log.read_text(),
                        }
                    }
                }
            ]
        }
    }
    message = jobresult.termination_message([pod])
    assert message is not None
    return message


@pytest.mark.parametrize(
    "result",
    [BACKUP, VERIFY_FAILED, RESTORE_MISMATCH, DELETED, FAILURE],
    ids=["backup", "verify-backup", "restore", "delete-backup", "failure"],
)
def test_a_backup_commands_result_is_read_back_whole(
    tmp_path: Path, result: jobresult.JobResult
) -> None:
    message = written(tmp_path, result)
    assert list(json.loads(message)) == list(result)  # the keys, in their order
    outcome = jobresult.read_outcome(message, None)
    assert outcome.data == result
    assert outcome.ok is result["ok"]
    assert outcome.reason == result.get("reason", "Succeeded")
    assert outcome.message == (result.get("error") or "")


def test_a_preflight_verdict_is_read_back_whole(tmp_path: Path) -> None:
    message = written(tmp_path, PREFLIGHT)
    assert json.loads(message) == PREFLIGHT
    verdict = jobresult.read_verdict(message)
    assert (verdict.ok, verdict.retryable, verdict.server_version) == (False, True, "15.18")
    assert verdict.checks == PREFLIGHT["checks"]
    assert verdict.summary == "lock-blockers: locks held on users: pid 42"
    assert verdict.dry_run == {"ran": True, "rows": 3}


def test_a_refused_login_is_named_in_the_verdict(tmp_path: Path) -> None:
    refused: jobresult.Preflight = {
        "ok": False,
        "retryable": True,
        "reason": "AuthenticationFailed",
        "checks": [{"name": "connectivity", "passed": False, "message": "password failed"}],
    }
    assert jobresult.read_verdict(written(tmp_path, refused)).reason == "AuthenticationFailed"
    assert jobresult.read_verdict(written(tmp_path, PREFLIGHT)).reason is None


def test_an_unreadable_plan_is_a_verdict_that_retrying_will_not_change(tmp_path: Path) -> None:
    unreadable: jobresult.Preflight = {
        "ok": False,
        "retryable": False,
        "checks": [
            {"name": "plan", "passed": False, "message": "cannot read the plan: no sqlFile"}
        ],
    }
    verdict = jobresult.read_verdict(written(tmp_path, unreadable))
    assert not verdict.ok and not verdict.retryable
    assert verdict.server_version is None and verdict.dry_run == {}
    assert verdict.summary == "plan: cannot read the plan: no sqlFile"


def test_an_oversized_result_loses_its_error_tail_then_its_lists(tmp_path: Path) -> None:
    big: jobresult.Restore = {
        **RESTORE_MISMATCH,
        "error": "é" * 5000,
        "mismatches": [{"table": "t" * 400, "expectedRows": 1, "actualRows": 2}] * 5,
    }
    message = written(tmp_path, big)
    assert len(message.encode()) <= jobresult.LIMIT
    data = json.loads(message)
    assert data["error"] == "é" * (jobresult.MAX_ERROR - 3) + "..."
    assert "mismatches" not in data  # 2,000 bytes of table names did not fit
    assert data["tables"] == 2 and data["rows"] == 5  # everything else is kept
    outcome = jobresult.read_outcome(message, None)
    assert not outcome.ok and outcome.reason == "RowCountMismatch"
    assert outcome.message.startswith("é")


def test_lists_go_in_order_checks_mismatches_verification(tmp_path: Path) -> None:
    checks_only: jobresult.Backup = {**BACKUP, "checks": ["c" * 500] * 8}
    data = json.loads(written(tmp_path, checks_only))
    assert "checks" not in data and data["verification"] == BACKUP["verification"]
    assert data["sha256"] == BACKUP["sha256"]


def test_a_pathological_result_keeps_ok_reason_and_the_start_of_its_error(tmp_path: Path) -> None:
    huge: jobresult.Backup = {
        **BACKUP,
        "ok": False,
        "reason": "VerificationFailed",
        "error": "x" * 900,
        "location": "/" + "l" * 5000,
    }
    data = json.loads(written(tmp_path, huge))
    assert data == {"ok": False, "reason": "VerificationFailed", "error": "x" * 200}


def test_an_oversized_preflight_keeps_every_check_with_shorter_messages(tmp_path: Path) -> None:
    checks: list[jobresult.Check] = [
        {"name": f"check-{i}", "passed": i != 3, "message": f"{i} " + "m" * 2000} for i in range(8)
    ]
    message = written(tmp_path, {**PREFLIGHT, "checks": checks})
    assert len(message.encode()) <= jobresult.LIMIT
    verdict = jobresult.read_verdict(message)
    assert [c["name"] for c in verdict.checks] == [c["name"] for c in checks]
    assert all(c["message"].startswith(f"{i} m") for i, c in enumerate(verdict.checks))
    assert all(len(c["message"]) <= 400 for c in verdict.checks)
    assert verdict.summary.startswith("check-3: 3 m") and not verdict.ok


def test_small_results_are_kept_whole() -> None:
    assert json.loads(jobresult.encode(DELETED)) == DELETED
    assert json.loads(jobresult.encode(PREFLIGHT)) == PREFLIGHT


def test_a_job_without_a_result_reports_the_job_controllers_reason() -> None:
    outcome = jobresult.read_outcome(
        None, "DeadlineExceeded: Job was active longer than specified deadline"
    )
    assert not outcome.ok and outcome.reason == "DeadlineExceeded"
    assert "deadline" in outcome.message
    assert jobresult.read_outcome("garbage", None).reason == "NoResult"
    assert jobresult.read_outcome("[1]", None).reason == "NoResult"
    verdict = jobresult.read_verdict("Traceback: boom", "BackoffLimitExceeded: too many")
    assert not verdict.ok and verdict.retryable
    assert verdict.summary == "BackoffLimitExceeded: too many: Traceback: boom"


def test_a_job_that_failed_after_writing_ok_is_not_ok(tmp_path: Path) -> None:
    outcome = jobresult.read_outcome(written(tmp_path, BACKUP), "BackoffLimitExceeded: x")
    assert not outcome.ok and outcome.reason == "JobFailed"


def test_the_newest_terminated_container_speaks() -> None:
    def pod(finished: str, message: str | None) -> dict[str, Any]:
        return {
            "status": {
                "containerStatuses": [
                    {"state": {"terminated": {"finishedAt": finished, "message": message}}}
                ]
            }
        }

    pods = [
        pod("2024-05-01T02:00:09Z", "second"),
        pod("2024-05-01T02:00:01Z", "first"),
        pod("2024-05-01T02:00:10Z", None),
        {"status": {}},
    ]
    assert jobresult.termination_message(pods) == "second"
    assert jobresult.termination_message([]) is None


def test_a_set_run_is_shortened_to_the_limit_keeping_the_newest_migrations() -> None:
    from kubemigrate import jobresult  # noqa: PLC0415

    recent: list[jobresult.SetMigration] = [
        {
            "version": f"{i:05d}",
            "description": "d" * 90,
            "kind": "apply",
            "durationSeconds": 0.1,
            "rowsAffected": i,
            "tablesCreated": [f"public.table_{i}_" + "x" * 40],
        }
        for i in range(40)
    ]
    result: jobresult.SetRun = {
        "ok": False,
        "direction": "apply",
        "reason": "SQLError",
        "transient": False,
        "dryRun": False,
        "applied": 39,
        "rolledBack": 0,
        "rowsAffected": 1,
        "startedAt": "t",
        "completedAt": "t",
        "durationSeconds": 1.0,
        "recent": recent,
        "versions": [f"{i:05d}" for i in range(300)],
        "lastError": {"version": "00040", "message": "e" * 5000, "statement": "s" * 5000},
        "error": "x" * 5000,
    }
    text = jobresult.encode(result)
    assert len(text.encode()) <= jobresult.LIMIT
    data = json.loads(text)
    assert data["reason"] == "SQLError" and data["lastError"]["version"] == "00040"
    assert data["recent"] and data["recent"][-1]["version"] == "00039"
