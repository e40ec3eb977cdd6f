"""Pure builders of a Migration's status: a phase with its kstatus conditions, and the engine's
results rendered as status fields (camelCase, RFC 3339 times, no credentials)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubemigrate.controller.build.conditions import build_conditions, health
from kubemigrate.engine.migrate.results import MigrationResult, RunReport

MAX_MESSAGE = 1024


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> str:
    return rfc3339(datetime.now(UTC))


def phase(name: str, reason: str, message: str, generation: int,
          previous: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A status patch that moves to phase `name`, with conditions that agree with it."""
    message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
    conditions: Sequence[Mapping[str, Any]] = previous.get("conditions") or []
    return {
        "phase": name,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "conditions": build_conditions(health(name, reason, message), generation, now(),
                                       conditions),
        "waitingFor": None,
        **fields,
    }


def seconds(value: float) -> str:
    """A duration for messages: 850µs, 12.3ms, 1.25s."""
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1000:.1f}ms"
    return f"{value:.2f}s"


def run_fields(report: RunReport, result: MigrationResult | None) -> dict[str, Any]:
    """Timing and effects of one engine run, as status fields."""
    fields: dict[str, Any] = {
        "runId": report.run_id,
        "schemaVersion": report.schema_version,
        "startedAt": rfc3339(report.started_at),
        "completedAt": rfc3339(report.finished_at),
        "durationSeconds": round(report.duration_seconds, 3),
    }
    if result is not None:
        fields.update({
            "startedAt": rfc3339(result.started_at),
            "completedAt": rfc3339(result.finished_at),
            "durationSeconds": round(result.duration_seconds, 3),
            "rowsAffected": result.rows_affected,
            "tablesCreated": list(result.tables_created),
            "tablesAltered": list(result.tables_altered),
            "tablesDropped": list(result.tables_dropped),
            "attempts": result.attempts,
        })
    return fields


def last_error(result: MigrationResult) -> dict[str, Any]:
    """status.lastError of a failed run: SQLSTATE, message and where in the SQL."""
    error: dict[str, Any] = {"message": (result.error or "failed")[:MAX_MESSAGE]}
    if result.sqlstate:
        error["sqlstate"] = result.sqlstate
    if result.line is not None:
        error["line"] = result.line
    if result.statement_index is not None:
        error["statement"] = f"statement {result.statement_index}"
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
