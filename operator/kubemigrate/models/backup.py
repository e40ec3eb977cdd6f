"""The DatabaseBackup kind: one pg_dump of one database, run as a Job, optionally verified."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from kubemigrate.models.base import (
    AGE,
    Duration,
    ObjectMeta,
    Resource,
    SpecModel,
    at_most,
    cel,
    column,
    validations,
)
from kubemigrate.models.common import DatabaseRef, LastError, ReconciledStatus, Verification
from kubemigrate.models.storage import BackupStorage


def immutable(what: str) -> dict[str, Any]:
    """A transition rule refusing any change: a backup's source and target are fixed at creation."""
    return validations(
        cel("self == oldSelf", f"{what} cannot change; create a new DatabaseBackup instead")
    )


class BackupFormat(StrEnum):
    CUSTOM = "custom"
    PLAIN = "plain"
    DIRECTORY = "directory"


class BackupPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class BackupVerify(SpecModel):
    """How hard to check the backup. pg_restore --list always runs on the finished file."""

    restore: bool = Field(
        False,
        description=(
            "Also restore the backup into a scratch database and compare row counts table by "
            "table with the source. Default: false."
        ),
    )


MAX_TTL = "87600h"
"""Ten years: longer is no retention, and overflows the operator's clock arithmetic."""
Ttl = Annotated[Duration, *at_most(MAX_TTL, "retention.ttl")]


class Retention(SpecModel):
    """When backups of this database are deleted."""

    keep_last: int | None = Field(
        None,
        description=(
            "Keep only the newest N succeeded DatabaseBackups of the same database in this "
            "namespace; older ones are deleted when this one succeeds."
        ),
        ge=1,
    )
    ttl: Ttl | None = Field(
        None,
        description=(
            "Delete this backup (resource and file) this long after it completed: 168h. "
            f"At most {MAX_TTL}."
        ),
    )


Compression = Annotated[
    str,
    StringConstraints(max_length=16, pattern=r"^([0-9]|(none|gzip|lz4|zstd)(:[0-9]{1,2})?)$"),
]


class DatabaseBackupSpec(SpecModel):
    """What to back up and where to. Reusable as a template: it names no backup of its own."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.jobs) || self.jobs == 1 || self.format == 'directory'",
                "jobs > 1 needs format: directory (pg_dump -j writes one file per table)",
            )
        )
    )

    database: DatabaseRef = Field(
        description="The database to back up. Required; immutable.",
        json_schema_extra=immutable("spec.database"),
    )
    storage: BackupStorage = Field(
        description="Where to write the backup. Required; immutable.",
        json_schema_extra=immutable("spec.storage"),
    )
    format: BackupFormat = Field(
        BackupFormat.CUSTOM,
        description=(
            "pg_dump's output format: custom (compressed, selective restore), plain (SQL text) "
            "or directory. Default: custom. Immutable."
        ),
        json_schema_extra=immutable("spec.format"),
    )
    jobs: int | None = Field(
        None,
        description=(
            "Parallel pg_dump workers (pg_dump -j), each with its own database connection; "
            "needs format: directory. Default: 1."
        ),
        ge=1,
        le=32,
    )
    compress: Compression | None = Field(
        None,
        description=(
            "pg_dump --compress: a gzip level 0-9, or with pg_dump 16 and newer gzip:N, lz4[:N], "
            "zstd[:N] or none (the operator's image decides which pg_dump runs). Default: "
            "pg_dump's (gzip)."
        ),
    )
    verify: BackupVerify = Field(
        default=BackupVerify(), description="How to check the backup after taking it."
    )
    retention: Retention | None = Field(None, description="When to delete backups.")
    active_deadline_seconds: int = Field(
        3600,
        description="Seconds the backup Job may run before the backup fails. Default: 3600.",
        ge=1,
    )


class DatabaseBackupStatus(ReconciledStatus):
    """The outcome of the backup Job."""

    phase: BackupPhase | None = Field(None, description="Where the backup is.")
    size_bytes: int | None = Field(None, description="Size of the backup in bytes.")
    location: str | None = Field(
        None,
        description=(
            "Where the backup is, e.g. pvc://backups/prod/orders-20241220.dump or "
            "s3://bucket/prod/orders-1a2b3c4d.dump."
        ),
    )
    sha256: str | None = Field(None, description="sha256 of the backup file, in hex.")
    server_version: str | None = Field(
        None, description="PostgreSQL server version of the database backed up."
    )
    verified: bool | None = Field(
        None, description="Whether the backup passed verification (pg_restore --list, restore)."
    )
    verification: Verification | None = Field(
        None, description="Row counts compared by a test restore, when verify.restore is set."
    )
    last_error: LastError | None = Field(None, description="Why the backup failed.")
    job: str | None = Field(None, description="Name of the Job that ran the backup.")
    failed_logins: int | None = Field(
        None,
        description=(
            "Refused logins in a row: a wrong password, or a Secret value that is no PostgreSQL "
            "URL. Each is retried with backoff; at the operator's loginAttempts (default 10) "
            "the resource is Failed and Stalled. Cleared by a login that works."
        ),
    )


class DatabaseBackup(SpecModel):
    """A pg_dump backup of a PostgreSQL database, taken by a Job."""

    api_version: Literal["kubemigrate.dev/v1alpha1"] = "kubemigrate.dev/v1alpha1"
    kind: Literal["DatabaseBackup"] = "DatabaseBackup"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DatabaseBackupSpec = Field(description="What to back up and where to.")
    status: DatabaseBackupStatus | None = Field(None, description="The outcome of the backup.")


RESOURCE = Resource(
    model=DatabaseBackup,
    kind="DatabaseBackup",
    plural="databasebackups",
    short_names=("dbbackup",),
    columns=(
        column("Phase", "string", ".status.phase", "Where the backup is."),
        column("Size", "integer", ".status.sizeBytes", "Size of the backup in bytes."),
        column("Duration", "number", ".status.durationSeconds", "Seconds the backup took."),
        column("Verified", "boolean", ".status.verified", "Whether verification passed."),
        AGE,
        column("Location", "string", ".status.location", "Where it is.", priority=1),
    ),
)
