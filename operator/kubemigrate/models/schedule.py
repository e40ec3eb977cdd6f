"""The DatabaseBackupSchedule kind: DatabaseBackups stamped out on a cron schedule, with
CronJob's rules for missed runs, concurrency and history.

The backup to take is a whole `DatabaseBackupSpec` (whatever storage and format choices that
kind gains, a schedule offers them too). The cron expression and the time zone are checked here
with the same library the operator schedules with (cronsim) and Python's IANA database, so the
CLI's manifest check and the operator refuse the same things; the CRD checks their shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, Field, StringConstraints

from kubemigrate.models.backup import DatabaseBackupSpec
from kubemigrate.models.base import (
    AGE,
    ObjectMeta,
    Resource,
    SpecModel,
    StatusModel,
    cel,
    column,
    validations,
)
from kubemigrate.models.common import Condition

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""CronJob's macros, as the five fields they stand for."""

CRON_PATTERN = r"^(@[a-z]+|[^\s]+(\s+[^\s]+){4,5})$"
"""Five fields (minute hour day-of-month month day-of-week), a macro, or six fields with a
leading seconds field (accepted by the operator only with KUBEMIGRATE_SCHEDULE_SECONDS)."""

RULES = "x-kubernetes-validations"

TZ_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"


def expand(expression: str) -> str:
    """The fields of a cron expression, macros replaced: ``@daily`` -> ``0 0 * * *``."""
    text = " ".join(expression.split())
    return MACROS.get(text, text)


def seconds_field(expression: str) -> bool:
    """Whether the expression has the sixth, leading seconds field."""
    return len(expand(expression).split()) == 6


def _check_cron(expression: str) -> str:
    fields = expand(expression)
    if fields.startswith("@"):
        raise ValueError("unknown macro; use one of " + ", ".join(sorted(MACROS)))
    if "TZ=" in fields.upper():
        raise ValueError("set the time zone in spec.timeZone, not in schedule")
    try:
        CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from exc
    return expression


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Paris)") from exc
    return name


CronExpression = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=CRON_PATTERN),
    AfterValidator(_check_cron),
    Field(
        json_schema_extra=validations(
            cel("!self.contains('TZ=')", "set the time zone in spec.timeZone, not in schedule"),
            cel(
                "!self.startsWith('@') || self in " + str(sorted(MACROS)).replace('"', "'"),
                "unknown macro; use one of " + ", ".join(sorted(MACROS)),
            ),
        )
    ),
]
TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=TZ_PATTERN),
    AfterValidator(_check_zone),
]


class ConcurrencyPolicy(StrEnum):
    """What to do at a scheduled time while an earlier backup of this schedule is active.

    Whatever the policy, two backups of one database never run at once: DatabaseBackups of one
    database queue behind each other, so Allow means "queue"."""

    FORBID = "Forbid"
    REPLACE = "Replace"
    ALLOW = "Allow"


LabelValue = Annotated[str, Field(max_length=63, description="A label's value.")]
AnnotationValue = Annotated[str, Field(max_length=65536, description="An annotation's value.")]


class BackupTemplate(SpecModel):
    """The DatabaseBackup each run creates."""

    labels: dict[str, LabelValue] = Field(
        default_factory=dict, description="Labels of each DatabaseBackup created."
    )
    annotations: dict[str, AnnotationValue] = Field(
        default_factory=dict, description="Annotations of each DatabaseBackup created."
    )
    spec: DatabaseBackupSpec = Field(
        description="The spec of each DatabaseBackup created, exactly as a DatabaseBackup takes it."
    )


class DatabaseBackupScheduleSpec(SpecModel):
    """When to back up, what, and what to keep."""

    schedule: CronExpression = Field(
        description=(
            "When to take a backup: a cron expression of five fields (minute hour day-of-month "
            "month day-of-week, e.g. '30 2 * * *'), or @hourly, @daily, @weekly, @monthly, "
            "@yearly. Required."
        )
    )
    time_zone: TimeZone = Field(
        "Etc/UTC",
        description=(
            "The IANA time zone the schedule is read in, e.g. Europe/Paris. Default: Etc/UTC. "
            "Across a daylight-saving change a time that does not exist runs once right after "
            "the change, and a time that happens twice runs once."
        ),
    )
    backup_template: BackupTemplate = Field(description="The DatabaseBackup to create. Required.")
    suspend: bool = Field(
        False,
        description=(
            "True: create no new backups (those running go on). Runs missed while suspended "
            "follow the startingDeadlineSeconds rule when it is set false again."
        ),
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        ConcurrencyPolicy.FORBID,
        description=(
            "While a backup of this schedule is still Pending or Running: Forbid skips the new "
            "run (it starts once the active one ends, if still within startingDeadlineSeconds), "
            "Replace deletes the active one and starts the new one, Allow creates the new one, "
            "which queues: two backups of one database never run at once. Default: Forbid."
        ),
    )
    starting_deadline_seconds: int | None = Field(
        None,
        ge=1,
        description=(
            "A run that could not start within this many seconds of its scheduled time (the "
            "operator was down, the schedule suspended, Forbid) is skipped. Unset: a missed run "
            "starts late however late. Only the most recent missed run is ever started."
        ),
    )
    successful_backups_history_limit: int = Field(
        3,
        ge=1,
        le=1000,
        description=(
            "Succeeded DatabaseBackups of this schedule to keep; older ones are deleted, and "
            "with them their backup files. Default: 3."
        ),
    )
    failed_backups_history_limit: int = Field(
        1,
        ge=0,
        le=1000,
        description="Failed DatabaseBackups of this schedule to keep. Default: 1.",
    )


class BackupRecord(StatusModel):
    """One DatabaseBackup of this schedule."""

    name: str = Field(description="Name of the DatabaseBackup.")
    time: datetime | None = Field(None, description="When it completed (or was scheduled).")


class DatabaseBackupScheduleStatus(StatusModel):
    """What the schedule did last and will do next."""

    reason: str | None = Field(
        None, description="One CamelCase word saying why the schedule is as it is."
    )
    message: str | None = Field(None, description="A human-readable summary.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Ready (the schedule is valid and its last backup did not fail), Reconciling and "
            "Stalled (an invalid schedule), with the kstatus meaning."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        None, description="The metadata.generation this status describes."
    )
    last_schedule_time: datetime | None = Field(
        None, description="The scheduled time of the last backup created."
    )
    next_schedule_time: datetime | None = Field(
        None, description="When the next backup is due (unset while suspended or invalid)."
    )
    last_successful_backup: BackupRecord | None = Field(
        None, description="The newest backup of this schedule that succeeded, and when."
    )
    last_failed_backup: BackupRecord | None = Field(
        None, description="The newest backup of this schedule that failed, and when."
    )
    last_missed_time: datetime | None = Field(
        None,
        description=(
            "The newest scheduled time skipped because it was past startingDeadlineSeconds."
        ),
    )
    active: list[BackupRecord] = Field(
        default_factory=list,
        description="Backups of this schedule still Pending or Running.",
        max_length=100,
    )


class DatabaseBackupSchedule(SpecModel):
    """DatabaseBackups taken on a cron schedule, with history limits."""

    api_version: Literal["kubemigrate.dev/v1alpha1"] = "kubemigrate.dev/v1alpha1"
    kind: Literal["DatabaseBackupSchedule"] = "DatabaseBackupSchedule"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DatabaseBackupScheduleSpec = Field(description="When to back up, what, and what to keep.")
    status: DatabaseBackupScheduleStatus | None = Field(
        None, description="What the schedule did last and will do next."
    )

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The schema without the DatabaseBackup's transition rules (``oldSelf``): a backup's
        database and storage are fixed once it exists, a template's may change."""
        schema: dict[str, Any] = _without_transition_rules(
            super().model_json_schema(*args, **kwargs)
        )
        return schema


def _without_transition_rules(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _without_transition_rules(v) for k, v in node.items()}
        rules = out.get(RULES)
        if isinstance(rules, list):
            kept = [r for r in rules if "oldSelf" not in str(r.get("rule", ""))]
            if kept:
                out[RULES] = kept
            else:
                del out[RULES]
        return out
    if isinstance(node, list):
        return [_without_transition_rules(v) for v in node]
    return node


RESOURCE = Resource(
    model=DatabaseBackupSchedule,
    kind="DatabaseBackupSchedule",
    plural="databasebackupschedules",
    short_names=("dbbackupschedule",),
    columns=(
        column("Schedule", "string", ".spec.schedule", "The cron expression."),
        column("Suspend", "boolean", ".spec.suspend", "Whether new runs are suspended."),
        column("Last", "date", ".status.lastScheduleTime", "Time since the last run."),
        column("Next", "string", ".status.nextScheduleTime", "When the next run is due."),
        column(
            "LastSuccess",
            "date",
            ".status.lastSuccessfulBackup.time",
            "Time since the last successful backup.",
        ),
        AGE,
        column("TimeZone", "string", ".spec.timeZone", "The schedule's time zone.", priority=1),
    ),
)
