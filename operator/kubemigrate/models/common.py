"""Parts several kinds share: references to other objects, conditions, errors, verification."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from kubemigrate.models.base import DataKey, ObjectName, Seconds, SpecModel, StatusModel


class SecretKeyRef(SpecModel):
    """A key of a Secret in the resource's own namespace."""

    name: ObjectName = Field(
        description="Name of the Secret, in the same namespace as this resource."
    )
    key: DataKey = Field(
        "url",
        description=(
            "Key in the Secret whose value is a libpq connection URI, "
            "postgresql://user:password@host:port/dbname."
        ),
    )


class DatabaseRef(SpecModel):
    """Where the database's connection URI is. Credentials never appear in status or events."""

    secret_ref: SecretKeyRef = Field(
        description="The Secret key holding the database's libpq connection URI."
    )


class ConfigMapKeyRef(SpecModel):
    """A key of a ConfigMap in the resource's own namespace."""

    name: ObjectName = Field(
        description="Name of the ConfigMap, in the same namespace as this resource."
    )
    key: DataKey = Field(
        description="Key in the ConfigMap whose value is the SQL script.",
    )


class SqlSource(SpecModel):
    """SQL kept outside the resource, for scripts too large to inline."""

    config_map_key_ref: ConfigMapKeyRef = Field(
        description="A ConfigMap key holding the SQL script (at most 1 MiB, the ConfigMap limit)."
    )


class LocalObjectReference(SpecModel):
    """A reference to another object of a known kind in the same namespace."""

    name: ObjectName = Field(
        description="Name of the object, in the same namespace as this resource."
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One aspect of the resource's state, with kstatus meaning (Ready, Reconciling, Stalled)."""

    type: str = Field(description="Condition type, e.g. Ready, Reconciling or Stalled.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str | None = Field(
        None, description="One CamelCase word saying why the condition has this status."
    )
    message: str | None = Field(None, description="A human-readable explanation.")
    last_transition_time: datetime = Field(description="When the condition last changed status.")
    observed_generation: int | None = Field(
        None, description="The metadata.generation the condition was set for."
    )


class LastError(StatusModel):
    """The error of the last failed run, as PostgreSQL reported it; never holds credentials."""

    sqlstate: str | None = Field(
        None, description="PostgreSQL's five-character SQLSTATE code, e.g. 42P07 or 55P03."
    )
    message: str = Field(description="The error message.")
    statement: str | None = Field(
        None, description="The statement that failed (possibly shortened)."
    )
    line: int | None = Field(
        None, description="1-based line of the failing statement within the script."
    )
    position: int | None = Field(
        None, description="1-based character position of the error within the statement."
    )
    detail: str | None = Field(None, description="PostgreSQL's DETAIL, if any.")
    hint: str | None = Field(None, description="PostgreSQL's HINT, if any.")


class TableMismatch(StatusModel):
    """A table whose row count after a restore differs from the count taken at backup time."""

    table: str = Field(description="Schema-qualified table name.")
    expected_rows: int = Field(description="Rows in the table when the backup was taken.")
    actual_rows: int = Field(description="Rows in the table after the restore.")


class Verification(StatusModel):
    """The outcome of comparing per-table row counts after a restore with the backup's."""

    tables: int = Field(description="Number of tables compared.")
    rows: int = Field(description="Total rows restored across those tables.")
    matched: bool = Field(description="Whether every table's row count matched.")
    mismatches: list[TableMismatch] = Field(
        default_factory=list,
        description="Tables whose row counts differ (the first few, if many).",
        max_length=100,
    )


class ReconciledStatus(StatusModel):
    """What the status of every kind has: why it is where it is, and kstatus conditions that
    say so to kubectl wait, Flux and Argo CD, for the generation it describes."""

    reason: str | None = Field(
        None,
        description=(
            "One CamelCase word saying why the resource is in this phase, e.g. "
            "WaitingForDependency, ConnectionFailed, DeadlineExceeded."
        ),
    )
    message: str | None = Field(None, description="A human-readable summary of the phase.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling and Stalled, with the kstatus meaning.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        None, description="The metadata.generation this status describes."
    )
    started_at: datetime | None = Field(None, description="When the last run started.")
    completed_at: datetime | None = Field(None, description="When the last run ended.")
    duration_seconds: Seconds | None = Field(None, description="How long the last run took.")
