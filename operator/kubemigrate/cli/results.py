"""The engine's results as the Job results of kubemigrate.jobresult: what the preflight and
backup commands print with --json and write to --termination-log.

Times are UTC ISO 8601 with a ``Z``; durations are rounded to milliseconds; a result that fails
(verification, row counts) says why in ``reason``, a status condition's reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from kubemigrate import jobresult

if TYPE_CHECKING:
    from kubemigrate.engine import (
        BackupResult,
        CountCheck,
        PreflightReport,
        RestoreResult,
        VerifyResult,
    )


def failure(message: str, reason: str) -> jobresult.Failure:
    """The result of a run that failed before it had anything else to report."""
    return {"ok": False, "reason": reason, "error": message}


def preflight(report: PreflightReport) -> jobresult.Preflight:
    """The preflight report, every check in the order it ran."""
    verdict: jobresult.Preflight = {
        "ok": report.ok,
        "retryable": report.retryable,
        "serverVersion": report.server_version,
        "checks": [
            {"name": c.name, "passed": c.passed, "message": c.message} for c in report.checks
        ],
        "dryRun": report.dry_run,
    }
    if report.reason is not None:
        verdict["reason"] = report.reason
    return verdict


def unreadable_plan(problem: str) -> jobresult.Preflight:
    """The verdict on a plan that cannot be read: no check ran, and retrying will not help."""
    return {
        "ok": False,
        "retryable": False,
        "checks": [
            {"name": "plan", "passed": False, "message": f"cannot read the plan: {problem}"}
        ],
    }


def backup(
    result: BackupResult, checked: VerifyResult | None, restored: RestoreResult | None
) -> jobresult.Backup:
    """A backup's result; ``verified`` is null unless verification ran."""
    data: jobresult.Backup = {
        "ok": True,
        "location": str(result.path),
        "format": result.format,
        "database": result.database,
        "sizeBytes": result.size_bytes,
        "sha256": result.sha256,
        "serverVersion": result.server_version,
        "tables": None if result.tables is None else len(result.tables),
        "rows": result.rows,
        "verified": None,
        "startedAt": _time(result.started_at),
        "completedAt": _time(result.completed_at),
        "durationSeconds": round(result.duration_seconds, 3),
        "error": None,
    }
    if checked is not None:
        verified, checks, error, counts = _verification(checked, restored)
        data["verified"] = verified
        data["checks"] = checks
        if error is not None:
            data["error"] = error
        if counts is not None:
            data["verification"] = counts
        if not data["verified"]:
            data["ok"] = False
            data["reason"] = "VerificationFailed"
    return data


def verify(checked: VerifyResult, restored: RestoreResult | None) -> jobresult.VerifyBackup:
    """verify-backup's result."""
    verified, checks, error, counts = _verification(checked, restored)
    data: jobresult.VerifyBackup = {
        "ok": True,
        "location": str(checked.path),
        "format": checked.format,
        "error": error,
        "verified": verified,
        "checks": checks,
    }
    if counts is not None:
        data["verification"] = counts
    if not data["verified"]:
        data["ok"] = False
        data["reason"] = "VerificationFailed"
    return data


def restore(result: RestoreResult) -> jobresult.Restore:
    """A restore's result; ``matched`` is null when the backup recorded no row counts."""
    check = result.check
    data: jobresult.Restore = {
        "ok": check is None or check.matched,
        "location": str(result.path),
        "database": result.database,
        "tables": len(result.tables),
        "rows": result.rows,
        "matched": None if check is None else check.matched,
        "mismatches": [] if check is None else _mismatches(check),
        "startedAt": _time(result.started_at),
        "completedAt": _time(result.completed_at),
        "durationSeconds": round(result.duration_seconds, 3),
        "error": None,
    }
    if not data["ok"]:
        data["reason"] = "RowCountMismatch"
    return data


def _verification(
    checked: VerifyResult, restored: RestoreResult | None
) -> tuple[bool, list[str], str | None, jobresult.RowCounts | None]:
    """(verified, checks, error, the test restore's row counts) of a verification."""
    verified, error = checked.ok, None
    if not checked.ok:
        error = "verification failed: " + "; ".join(checked.problems)
    counts: jobresult.RowCounts | None = None
    if restored is not None and restored.check is not None:
        check = restored.check
        counts = {
            "tables": check.tables,
            "rows": check.rows,
            "matched": check.matched,
            "mismatches": _mismatches(check),
        }
        if not check.matched:
            verified = False
            error = f"test restore: row counts differ: {check.summary()}"
    return verified, list(checked.checks), error, counts


def _mismatches(check: CountCheck) -> list[jobresult.Mismatch]:
    return [
        {"table": m.table, "expectedRows": m.expected, "actualRows": m.actual}
        for m in check.mismatches[: jobresult.MAX_MISMATCHES]
    ]


def _time(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
