"""The JSON a backup or restore Job leaves as its container's termination message.

Kubernetes keeps at most 4 KiB of ``/dev/termination-log`` in the pod status, which is where the
operator reads a Job's result, so the document is compact and shortened to fit: long errors are
cut, and only the first few row-count mismatches are listed. Keys are the camelCase names of the
DatabaseBackup and DatabaseRestore status fields they fill.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubemigrate.engine.backup.dump import BackupResult
    from kubemigrate.engine.backup.restore import RestoreResult
    from kubemigrate.engine.backup.rowcounts import CountCheck
    from kubemigrate.engine.backup.verify import VerifyResult

LIMIT = 4096
MAX_MISMATCHES = 5
MAX_ERROR = 1000


def error_json(message: str, reason: str) -> dict[str, Any]:
    """The result of a run that failed before it had anything else to report."""
    return {"ok": False, "reason": reason, "error": message}


def backup_json(result: BackupResult, checked: VerifyResult | None,
                restored: RestoreResult | None) -> dict[str, Any]:
    """A backup's result; ``verified`` is null unless verification ran."""
    data: dict[str, Any] = {
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
        data.update(_verification(checked, restored))
        if not data["verified"]:
            data["ok"] = False
            data["reason"] = "VerificationFailed"
    return data


def verify_json(checked: VerifyResult, restored: RestoreResult | None) -> dict[str, Any]:
    """verify-backup's result."""
    data: dict[str, Any] = {"ok": True, "location": str(checked.path),
                            "format": checked.format, "error": None}
    data.update(_verification(checked, restored))
    if not data["verified"]:
        data["ok"] = False
        data["reason"] = "VerificationFailed"
    return data


def restore_json(result: RestoreResult) -> dict[str, Any]:
    """A restore's result; ``matched`` is null when the backup recorded no row counts."""
    check = result.check
    data: dict[str, Any] = {
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


def _verification(checked: VerifyResult, restored: RestoreResult | None) -> dict[str, Any]:
    data: dict[str, Any] = {"verified": checked.ok, "checks": list(checked.checks)}
    if not checked.ok:
        data["error"] = "verification failed: " + "; ".join(checked.problems)
    if restored is not None and restored.check is not None:
        check = restored.check
        data["verification"] = {"tables": check.tables, "rows": check.rows,
                                "matched": check.matched, "mismatches": _mismatches(check)}
        if not check.matched:
            data["verified"] = False
            data["error"] = f"test restore: row counts differ: {check.summary()}"
    return data


def _mismatches(check: CountCheck) -> list[dict[str, Any]]:
    return [{"table": m.table, "expectedRows": m.expected, "actualRows": m.actual}
            for m in check.mismatches[:MAX_MISMATCHES]]


def _time(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def compact(data: dict[str, Any]) -> str:
    """data as JSON of at most LIMIT bytes: the error cut, then lists dropped, if need be."""
    data = dict(data)
    if isinstance(data.get("error"), str) and len(data["error"]) > MAX_ERROR:
        data["error"] = data["error"][:MAX_ERROR - 3] + "..."
    text = _dumps(data)
    for key in ("checks", "mismatches", "verification"):
        if len(text.encode()) <= LIMIT:
            break
        data.pop(key, None)
        text = _dumps(data)
    if len(text.encode()) > LIMIT:  # pathological (huge names): keep what matters most
        error = data.get("error")
        text = _dumps({"ok": data.get("ok"), "reason": data.get("reason"),
                       "error": error[:200] if isinstance(error, str) else None})
    return text


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def write_termination_log(path: Path, data: dict[str, Any]) -> None:
    """Write the compact JSON to path (Kubernetes reads it when the container ends)."""
    text = compact(data)
    with Path(path).open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        with contextlib.suppress(OSError):  # not every target can be synced (a pipe, /dev/...)
            os.fsync(f.fileno())
