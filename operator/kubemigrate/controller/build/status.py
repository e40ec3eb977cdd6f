"""Pure builders of status, through the models: a phase change with its kstatus conditions, the
engine's results as Migration status fields, and the patch sent to the API.

A change is a partial status model: the fields a builder sets, None included, are the merge
patch (None deletes a field), and nothing else is sent, so a typo in a field or a phase is a
type error, never a silently ignored key. Times are UTC to the second: 2024-12-20T10:00:00Z.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from kubemigrate.controller.build.conditions import build_conditions, health
from kubemigrate.engine import MigrationResult, RunReport
from kubemigrate.models.backup import DatabaseBackupStatus
from kubemigrate.models.common import Condition, LastError, ReconciledStatus
from kubemigrate.models.migration import MigrationStatus
from kubemigrate.models.migration_set import MigrationSetStatus
from kubemigrate.models.restore import DatabaseRestoreStatus

MAX_MESSAGE = 1024

StatusT = TypeVar(
    "StatusT", MigrationStatus, DatabaseBackupStatus, DatabaseRestoreStatus, MigrationSetStatus
)
"""The status of one of our kinds: each has its own phase enum."""


def status_of(model: type[StatusT], obj: Mapping[str, Any] | None) -> StatusT:
    """obj's status as model; empty when obj or its status is missing. The API server
    validated it against the schema generated from the same model."""
    return model.model_validate((obj or {}).get("status") or {})


def to_second(moment: datetime) -> datetime:
    """moment in UTC, to the second, as status shows times."""
    return moment.astimezone(UTC).replace(microsecond=0)


def up_to_second(moment: datetime) -> datetime:
    """moment in UTC, rounded up to the second: a retry time kept in status (whole seconds)
    is never earlier than the backoff asked for, so a wake-up cannot cut the wait short."""
    whole = to_second(moment)
    return whole if whole == moment.astimezone(UTC) else whole + timedelta(seconds=1)


def rfc3339(moment: datetime) -> str:
    """A UTC time as the status JSON shows it: 2024-12-20T10:00:00Z (fractions if it has any)."""
    return moment.isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return to_second(datetime.now(UTC))


def seconds_between(started: datetime | None, ended: datetime) -> float | None:
    """durationSeconds from a start to ended; None without a start."""
    if started is None:
        return None
    return round(max(0.0, (ended - started).total_seconds()), 3)


def clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def reported(model: type[StatusT], data: Mapping[str, Any]) -> StatusT:
    """When a finished Job says it completed and how long it took (None where it does not)."""
    return model.model_validate(
        {"completedAt": data.get("completedAt"), "durationSeconds": data.get("durationSeconds")}
    )


def moved(
    change: StatusT, generation: int, previous: Sequence[Condition], at: datetime | None = None
) -> StatusT:
    """change, which sets phase, reason and message, with what every phase change writes
    besides: the message cut to fit, observedGeneration, and conditions that agree."""
    if change.phase is None or change.reason is None:
        raise ValueError("a phase change sets phase and reason")
    message = clip(change.message or "")
    conditions = build_conditions(
        health(change.phase, change.reason, message), generation, at or now(), previous
    )
    full = change.model_copy()
    full.message = message
    full.observed_generation = generation
    full.conditions = conditions
    return full


def merged(first: StatusT, *more: StatusT) -> StatusT:
    """One change with every field the parts set; a later part's value wins."""
    update: dict[str, Any] = {}
    for part in more:
        update.update({name: getattr(part, name) for name in part.model_fields_set})
    return first.model_copy(update=update)


def patch(change: ReconciledStatus) -> dict[str, Any]:
    """The JSON merge patch of a change: camelCase, only the fields it sets."""
    return change.model_dump(by_alias=True, exclude_unset=True, mode="json")


def seconds(value: float) -> str:
    """A duration for messages: 850µs, 12.3ms, 1.25s."""
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1000:.1f}ms"
    return f"{value:.2f}s"


def run_fields(report: RunReport, result: MigrationResult | None) -> MigrationStatus:
    """Timing and effects of one engine run (of result's migration, when there is one)."""
    if result is None:
        return MigrationStatus(
            run_id=report.run_id,
            schema_version=report.schema_version,
            started_at=to_second(report.started_at),
            completed_at=to_second(report.finished_at),
            duration_seconds=round(report.duration_seconds, 3),
        )
    return MigrationStatus(
        run_id=report.run_id,
        schema_version=report.schema_version,
        started_at=to_second(result.started_at),
        completed_at=to_second(result.finished_at),
        duration_seconds=round(result.duration_seconds, 3),
        rows_affected=result.rows_affected,
        tables_created=list(result.tables_created),
        tables_altered=list(result.tables_altered),
        tables_dropped=list(result.tables_dropped),
        attempts=result.attempts,
    )


def last_error(result: MigrationResult) -> LastError:
    """status.lastError of a failed run: SQLSTATE, message and where in the SQL (only what is
    known is set: a merge patch keeps the fields it does not name)."""
    error = LastError(message=(result.error or "failed")[:MAX_MESSAGE])
    if result.sqlstate:
        error.sqlstate = result.sqlstate
    if result.line is not None:
        error.line = result.line
    if result.statement_index is not None:
        error.statement = f"statement {result.statement_index}"
    return error


def error_summary(result: MigrationResult) -> str:
    """One line for status.message and Events."""
    where = []
    if result.statement_index is not None:
        where.append(f"statement {result.statement_index}")
    if result.line is not None:
        where.append(f"line {result.line}")
    place = f" at {', '.join(where)}" if where else ""
    code = f"SQLSTATE {result.sqlstate}" if result.sqlstate else "error"
    return f"{code}{place}: {result.error}"
