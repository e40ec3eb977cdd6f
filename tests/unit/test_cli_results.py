"""The engine's results as Job results: the keys, their order and the reasons the operator's
status fields and conditions are made of."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kubemigrate.cli import results
from kubemigrate.engine.backup.dump import BackupResult
from kubemigrate.engine.backup.restore import RestoreResult
from kubemigrate.engine.backup.rowcounts import CountCheck, Mismatch
from kubemigrate.engine.backup.verify import VerifyResult
from kubemigrate.engine.migrate.preflight import Check, PreflightReport

START = datetime(2024, 5, 1, 2, 0, 0, tzinfo=UTC)
END = datetime(2024, 5, 1, 2, 0, 3, tzinfo=UTC)
DUMP = Path("/backups/x.dump")
TAKEN = BackupResult(
    DUMP, "custom", 10, "ab" * 32, "shop", "15.18", START, END, 3.14159, {"a": 1, "b": 6}
)
CHECKED = VerifyResult(DUMP, "custom", ("sha256 and size match the sidecar",), ())
DIFFERENT = CountCheck(2, 5, False, tuple(Mismatch(f"public.t{i}", 3, 1) for i in range(8)))


def restored(check: CountCheck | None) -> RestoreResult:
    return RestoreResult(DUMP, "custom", "shop", START, END, 1.0, {"a": 1, "b": 4}, check)


def test_a_backup_whose_test_restore_differs_is_not_verified() -> None:
    data = results.backup(TAKEN, CHECKED, restored(DIFFERENT))
    assert list(data) == [
        "ok",
        "location",
        "format",
        "database",
        "sizeBytes",
        "sha256",
        "serverVersion",
        "tables",
        "rows",
        "verified",
        "startedAt",
        "completedAt",
        "durationSeconds",
        "error",
        "checks",
        "verification",
        "reason",
    ]
    assert (data["ok"], data["verified"], data["reason"]) == (False, False, "VerificationFailed")
    assert data["error"] is not None and data["error"].startswith("test restore: row counts")
    assert (data["startedAt"], data["durationSeconds"]) == ("2024-05-01T02:00:00Z", 3.142)
    assert len(data["verification"]["mismatches"]) == 5  # the first few; the error counts all
    assert data["verification"]["mismatches"][0] == {
        "table": "public.t0",
        "expectedRows": 3,
        "actualRows": 1,
    }


def test_an_unverified_backup_says_null() -> None:
    data = results.backup(TAKEN, None, None)
    assert data["ok"] and data["verified"] is None
    assert "checks" not in data and "reason" not in data and data["rows"] == 7


def test_verify_backup_reports_its_problems() -> None:
    broken = VerifyResult(DUMP, None, (), ("backup /backups/x.dump does not exist",))
    assert results.verify(broken, None) == {
        "ok": False,
        "location": "/backups/x.dump",
        "format": None,
        "error": "verification failed: backup /backups/x.dump does not exist",
        "verified": False,
        "checks": [],
        "reason": "VerificationFailed",
    }


def test_a_restore_without_recorded_counts_matches_nothing_and_fails_nothing() -> None:
    data = results.restore(restored(None))
    assert data["ok"] and data["matched"] is None and data["mismatches"] == []
    assert results.restore(restored(DIFFERENT))["reason"] == "RowCountMismatch"


def test_a_preflight_report_keeps_its_checks_in_order() -> None:
    report = PreflightReport(
        (
            Check("connectivity", True, "PostgreSQL 15.18"),
            Check("drift", False, "checksum mismatch"),
        ),
        "15.18",
        False,
    )
    assert results.preflight(report) == {
        "ok": False,
        "retryable": False,
        "serverVersion": "15.18",
        "checks": [
            {"name": "connectivity", "passed": True, "message": "PostgreSQL 15.18"},
            {"name": "drift", "passed": False, "message": "checksum mismatch"},
        ],
        "dryRun": {},
    }
    assert results.unreadable_plan("no sqlFile")["checks"] == [
        {"name": "plan", "passed": False, "message": "cannot read the plan: no sqlFile"}
    ]
