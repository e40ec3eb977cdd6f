"""The one contract between a Job and the operator: the result a Job leaves, and how it is read.

Every Job the operator starts runs the CLI with ``--termination-log TERMINATION_LOG``. The CLI
writes its result there as compact JSON; Kubernetes keeps at most 4 KiB of it in the pod's
status (``state.terminated.message``), where the operator reads it: results come from the pod
status, never from logs. The TypedDicts below are that JSON, key for key: a Job and the operator
of one version talk through them, and their camelCase keys are the status fields they fill.

Written by the CLI (``write``), read by the controller (``termination_message``, then
``read_verdict`` or ``read_outcome``). It imports neither of them, nor the engine: both sides
can load it for nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

TERMINATION_LOG = "/dev/termination-log"
"""Where a Job's container writes its result: its terminationMessagePath."""

LIMIT = 4096
"""The bytes of a termination message Kubernetes keeps."""

MAX_ERROR = 1000
"""An error longer than this many characters is cut to fit."""

MAX_MISMATCHES = 5
"""Row-count mismatches listed in a result; the rest are counted in its error only."""


# -- what a Job writes -------------------------------------------------------------------------


class Check(TypedDict):
    """One preflight check's verdict."""

    name: str
    passed: bool
    message: str


class Preflight(TypedDict):
    """``kubemigrate preflight``'s verdict. A plan it could not read has a single ``plan``
    check, no serverVersion and no dryRun."""

    ok: bool
    retryable: bool
    serverVersion: NotRequired[str | None]
    checks: list[Check]
    dryRun: NotRequired[dict[str, object]]
    reason: NotRequired[str]
    """Why the database could not be used: ConnectionFailed, AuthenticationFailed (a refused
    login) or InvalidDatabaseUrl (the Secret's value is no PostgreSQL URL)."""


class Mismatch(TypedDict):
    """A table whose restored row count differs from the one the backup recorded."""

    table: str
    expectedRows: int
    actualRows: int


class RowCounts(TypedDict):
    """A test restore's row counts against the backup's: a backup's status.verification."""

    tables: int
    rows: int
    matched: bool
    mismatches: list[Mismatch]


class Failure(TypedDict):
    """A backup command that failed before it had anything else to report."""

    ok: bool
    reason: str
    error: str


class Backup(TypedDict):
    """``kubemigrate backup``'s result; ``verified`` is null unless verification ran."""

    ok: bool
    location: str
    format: str
    database: str
    sizeBytes: int
    sha256: str
    serverVersion: str
    tables: int | None
    rows: int | None
    verified: bool | None
    startedAt: str
    completedAt: str
    durationSeconds: float
    error: str | None
    checks: NotRequired[list[str]]
    verification: NotRequired[RowCounts]
    reason: NotRequired[str]


class VerifyBackup(TypedDict):
    """``kubemigrate verify-backup``'s result."""

    ok: bool
    location: str
    format: str | None
    error: str | None
    verified: bool
    checks: list[str]
    verification: NotRequired[RowCounts]
    reason: NotRequired[str]


class Restore(TypedDict):
    """``kubemigrate restore``'s result; ``matched`` is null when the backup recorded no row
    counts (nothing to compare, so nothing mismatched)."""

    ok: bool
    location: str
    database: str
    tables: int
    rows: int
    matched: bool | None
    mismatches: list[Mismatch]
    startedAt: str
    completedAt: str
    durationSeconds: float
    error: str | None
    reason: NotRequired[str]


class DeleteBackup(TypedDict):
    """``kubemigrate delete-backup``'s result: the names of the files it removed."""

    ok: bool
    location: str
    removed: list[str]
    error: None


class SetMigration(TypedDict):
    """One migration of a MigrationSet's run, as status.recent lists it."""

    version: str
    description: str
    kind: str
    durationSeconds: float
    rowsAffected: int
    tablesCreated: list[str]


class SetError(TypedDict):
    """Where a MigrationSet's run stopped: status.lastError."""

    version: NotRequired[str]
    file: NotRequired[str]
    sqlstate: NotRequired[str]
    message: str
    statement: NotRequired[str]
    line: NotRequired[int]


class SetRun(TypedDict):
    """``kubemigrate run-set``'s result: one MigrationSet run (preflight, then the migrations
    applied or rolled back). ``direction`` tells it from the other results; ``transient`` says
    whether the same run may pass later without a change (a held lock, an outage)."""

    ok: bool
    direction: str
    reason: str
    transient: bool
    dryRun: bool
    sourceChecksum: NotRequired[str]
    schemaVersion: NotRequired[str | None]
    applied: int
    rolledBack: int
    rowsAffected: int
    startedAt: str
    completedAt: str
    durationSeconds: float
    recent: list[SetMigration]
    versions: NotRequired[list[str]]
    """The plan of a dry run, in order (the first ones, if many)."""
    tablesCreated: NotRequired[list[str]]
    checks: NotRequired[list[Check]]
    lastError: NotRequired[SetError]
    error: str | None


class FleetWorker(TypedDict):
    """``kubemigrate fleet-worker``'s result: how one worker pod's loop ended. The targets'
    outcomes are in the wave's ledger (``fleetledger``), not here. ``reason`` is the ledger's
    stop reason (done, halted, paused) or why the worker could not go on (NotInCluster,
    ApiError, InvalidArguments)."""

    ok: bool
    reason: str
    ran: int
    failed: int
    error: str | None


BackupCommandResult = Backup | VerifyBackup | Restore | DeleteBackup | Failure
JobResult = Preflight | BackupCommandResult | SetRun | FleetWorker


def write(path: Path, result: JobResult) -> None:
    """Write result to path as ``encode`` makes it, synced: the kubelet reads it at the end."""
    text = encode(result)
    with Path(path).open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        with contextlib.suppress(OSError):  # not every target can be synced (a pipe, /dev/...)
            os.fsync(f.fileno())


def encode(result: JobResult) -> str:
    """result as compact JSON of at most LIMIT bytes.

    A preflight verdict keeps every check, the operator shows each one, and shortens their
    messages instead. Any other result has its error cut to MAX_ERROR characters, then loses
    checks, mismatches and verification, in that order, until it fits; if even that is too long
    (huge names), only ok, reason and the error's first 200 characters are kept.
    """
    if "retryable" in result:  # only a preflight verdict says whether to retry
        return _shorten_checks(cast(Preflight, result))
    if "direction" in result:  # only a set's run has one
        return _shorten_set(cast(SetRun, result))
    data: dict[str, object] = dict(result)
    error = data.get("error")
    if isinstance(error, str) and len(error) > MAX_ERROR:
        data["error"] = error[: MAX_ERROR - 3] + "..."
    text = _dumps(data)
    for key in ("checks", "mismatches", "verification"):
        if len(text.encode()) <= LIMIT:
            break
        data.pop(key, None)
        text = _dumps(data)
    if len(text.encode()) > LIMIT:
        error = data.get("error")
        short = error[:200] if isinstance(error, str) else None
        text = _dumps({"ok": data.get("ok"), "reason": data.get("reason"), "error": short})
    return text


def _shorten_checks(result: Preflight) -> str:
    checks = [c.copy() for c in result["checks"]]
    data = {**result, "checks": checks}
    text = _dumps(data)
    room = 400
    while len(text.encode()) > LIMIT and room > 20:
        for check in checks:
            check["message"] = check["message"][:room]
        text = _dumps(data)
        room //= 2
    return text


SET_LISTS = ("tablesCreated", "versions", "recent", "checks")
"""A set run's lists, shortened in this order (each to its newest half) until the result fits."""


def _shorten_set(result: SetRun) -> str:
    """A set run's result within LIMIT: its error texts cut to MAX_ERROR, then its lists halved
    (keeping the newest migrations of ``recent``) until it fits, then only the essentials."""
    data: dict[str, Any] = {k: (list(v) if isinstance(v, list) else v) for k, v in result.items()}
    if isinstance(data.get("error"), str):
        data["error"] = _cut(data["error"], MAX_ERROR)
    if isinstance(data.get("lastError"), dict):
        last = dict(data["lastError"])
        for key in ("message", "statement"):
            if isinstance(last.get(key), str):
                last[key] = _cut(last[key], MAX_ERROR // 2)
        data["lastError"] = last
    text = _dumps(data)
    for key in SET_LISTS:
        while len(text.encode()) > LIMIT and data.get(key):
            items = data[key]
            data[key] = (
                items[len(items) // 2 + 1 :] if key == "recent" else items[: len(items) // 2]
            )
            text = _dumps(data)
    if len(text.encode()) > LIMIT:
        keep = ("ok", "direction", "reason", "transient", "dryRun", "applied", "rolledBack")
        short = {k: data.get(k) for k in keep}
        short["error"] = _cut(str(data.get("error") or ""), 200)
        text = _dumps(short)
    return text


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


# -- what the operator reads -------------------------------------------------------------------


def termination_message(pods: list[dict[str, Any]]) -> str | None:
    """The newest terminated container's message among a Job's pods."""
    best: tuple[str, str] | None = None
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term and term.get("message"):
                stamp = str(term.get("finishedAt") or "")
                if best is None or stamp >= best[0]:
                    best = (stamp, str(term["message"]))
    return best[1] if best else None


@dataclass(frozen=True)
class Verdict:
    """What a finished preflight Job said. The checks are as the Job wrote them (``Check``
    from a Job of this version), not validated: the operator copies them into status."""

    ok: bool
    retryable: bool
    checks: list[dict[str, Any]]
    server_version: str | None
    summary: str
    dry_run: dict[str, Any]
    reason: str | None = None
    """The Job's ``reason``, when the database could not be used."""


def read_verdict(message: str | None, job_failed_because: str | None = None) -> Verdict:
    """A preflight Job's ``Preflight``; anything else is a failed, retryable verdict."""
    try:
        data = json.loads(message or "")
        checks = list(data["checks"])
    except (ValueError, KeyError, TypeError):
        why = job_failed_because or "the preflight Job reported no result"
        tail = f": {message.strip()[-300:]}" if message else ""
        return Verdict(
            False,
            True,
            [{"name": "job", "passed": False, "message": why + tail}],
            None,
            why + tail,
            {},
        )
    failed = [c for c in checks if not c.get("passed")]
    summary = (
        "all checks passed"
        if not failed
        else "; ".join(f"{c.get('name')}: {c.get('message')}" for c in failed)
    )
    return Verdict(
        bool(data.get("ok")) and not failed,
        bool(data.get("retryable", True)),
        checks,
        data.get("serverVersion"),
        summary,
        data.get("dryRun") or {},
        str(data["reason"]) if data.get("reason") else None,
    )


@dataclass(frozen=True)
class Outcome:
    """What a finished backup, restore or cleanup Job said: its JSON (one of the backup
    commands' results, as written), or why there is none."""

    ok: bool
    reason: str
    message: str
    data: dict[str, Any]


def read_outcome(message: str | None, job_failed_because: str | None) -> Outcome:
    """The result of a finished Job from its termination message and the Job's own verdict.

    Without a parsable message (the pod was killed at the deadline, or never started), the
    reason is the Job controller's, e.g. ``DeadlineExceeded``.
    """
    try:
        data = json.loads(message or "")
        if not isinstance(data, dict):
            raise TypeError
    except (ValueError, TypeError):
        why = job_failed_because or "the Job reported no result"
        reason = why.split(":", 1)[0] if job_failed_because else "NoResult"
        return Outcome(False, reason or "JobFailed", why, {})
    ok = bool(data.get("ok")) and job_failed_because is None
    reason = str(data.get("reason") or ("Succeeded" if ok else "JobFailed"))
    text = str(data.get("error") or job_failed_because or "")
    return Outcome(ok, reason, text, data)
