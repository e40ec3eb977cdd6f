"""Pure builders of a MigrationSet's status: progress read from the history, and a finished
run's result (``jobresult.SetRun``) as status fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubemigrate.controller.build.status import MAX_MESSAGE, to_second
from kubemigrate.engine import VersionState, version_key
from kubemigrate.models.migration import PreflightCheck
from kubemigrate.models.migration_set import (
    MAX_RECENT,
    MigrationSetStatus,
    RecentMigration,
    SetDryRun,
    SetError,
    SetRun,
)

APPLIED_STATES = frozenset({"applied", "drifted", "missing"})
"""States of a version the database has applied (``missing``: not in the source)."""


@dataclass(frozen=True)
class Progress:
    """Where the database stands against the source and the target."""

    current: str | None
    applied: int
    pending: int


def progress(
    states: Iterable[VersionState], versions: Sequence[str] | None, target: str
) -> Progress:
    """currentVersion, and how many of the source's versions are applied and still to apply (or
    to roll back) to reach target; versions None (an image source the operator cannot read):
    counted from the history alone, with nothing pending known."""
    limit = version_key(target)
    applied_keys: dict[tuple[int, ...], str] = {
        version_key(s.version): s.version for s in states if s.state in APPLIED_STATES
    }
    current = applied_keys[max(applied_keys)] if applied_keys else None
    if versions is None:
        return Progress(current, len(applied_keys), 0)
    keys = [version_key(v) for v in versions]
    applied = sum(1 for k in keys if k in applied_keys)
    to_apply = sum(1 for k in keys if k not in applied_keys and k <= limit)
    to_revert = sum(1 for k in applied_keys if k > limit)
    return Progress(current, applied, to_apply + to_revert)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return to_second(datetime.fromisoformat(value.replace("Z", "+00:00")))


def run_fields(data: Mapping[str, Any], job: str) -> MigrationSetStatus:
    """status.lastRun, recent, lastError, preflight (and dryRun) of a finished run."""
    fields = MigrationSetStatus(
        last_run=SetRun(
            started_at=_time(data.get("startedAt")),
            completed_at=_time(data.get("completedAt")),
            duration_seconds=data.get("durationSeconds"),
            applied=int(data.get("applied") or 0),
            rolled_back=int(data.get("rolledBack") or 0),
            rows_affected=int(data.get("rowsAffected") or 0),
            job=job,
        ),
        recent=[
            RecentMigration(
                version=str(m.get("version")),
                description=m.get("description"),
                kind=m.get("kind"),
                duration_seconds=m.get("durationSeconds"),
                rows_affected=m.get("rowsAffected"),
                tables_created=list(m.get("tablesCreated") or []),
            )
            for m in list(data.get("recent") or [])[-MAX_RECENT:]
        ],
        last_error=last_error(data),
    )
    if data.get("checks"):
        fields.preflight = [
            PreflightCheck(
                name=str(c.get("name", "?")),
                passed=bool(c.get("passed")),
                message=str(c.get("message", ""))[:512],
            )
            for c in data["checks"]
        ]
    if data.get("sourceChecksum"):
        fields.source_checksum = str(data["sourceChecksum"])
    if data.get("dryRun") and data.get("ok"):
        fields.dry_run = SetDryRun(
            completed_at=_time(data.get("completedAt")),
            migrations=len(data.get("versions") or []),
            rows_affected=int(data.get("rowsAffected") or 0),
            tables_created=list(data.get("tablesCreated") or []),
            versions=list(data.get("versions") or []),
        )
    return fields


def last_error(data: Mapping[str, Any]) -> SetError | None:
    """status.lastError of a run: where it stopped, or its error when no migration failed."""
    if data.get("ok"):
        return None
    found = data.get("lastError")
    if isinstance(found, dict):
        return SetError(
            version=found.get("version"),
            file=found.get("file"),
            sqlstate=found.get("sqlstate"),
            message=str(found.get("message") or "failed")[:MAX_MESSAGE],
            statement=found.get("statement"),
            line=found.get("line"),
        )
    return SetError(message=str(data.get("error") or "the run failed")[:MAX_MESSAGE])
