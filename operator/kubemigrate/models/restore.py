"""The DatabaseRestore kind: restoring a DatabaseBackup into the same or another database."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field

from kubemigrate.models.base import (
    AGE,
    ObjectMeta,
    Resource,
    SpecModel,
    cel,
    column,
    validations,
)
from kubemigrate.models.common import (
    DatabaseRef,
    LastError,
    LocalObjectReference,
    ReconciledStatus,
    Verification,
)


class RestorePhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class DatabaseRestoreSpec(SpecModel):
    """Which backup to restore, and into which database. Immutable: a restore runs once."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "a DatabaseRestore's spec cannot change; create a new DatabaseRestore instead",
            )
        )
    )

    backup_ref: LocalObjectReference = Field(
        description="The DatabaseBackup to restore, in this namespace. Required."
    )
    database: DatabaseRef | None = Field(
        None, description="The database to restore into. Default: the backup's database."
    )
    clean: bool = Field(
        False,
        description=(
            "Drop the backed-up objects before restoring. Without it a restore into a database "
            "that already has tables fails. Default: false."
        ),
    )
    active_deadline_seconds: int = Field(
        3600,
        description="Seconds the restore Job may run before the restore fails. Default: 3600.",
        ge=1,
    )


class DatabaseRestoreStatus(ReconciledStatus):
    """The outcome of the restore Job."""

    phase: RestorePhase | None = Field(None, description="Where the restore is.")
    verification: Verification | None = Field(
        None, description="Row counts per table compared with those recorded at backup time."
    )
    last_error: LastError | None = Field(None, description="Why the restore failed.")
    job: str | None = Field(None, description="Name of the Job that ran the restore.")


class DatabaseRestore(SpecModel):
    """A restore of a DatabaseBackup into a PostgreSQL database, run by a Job."""

    api_version: Literal["kubemigrate.dev/v1alpha1"] = "kubemigrate.dev/v1alpha1"
    kind: Literal["DatabaseRestore"] = "DatabaseRestore"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DatabaseRestoreSpec = Field(description="Which backup to restore, and where to.")
    status: DatabaseRestoreStatus | None = Field(None, description="The outcome of the restore.")


RESOURCE = Resource(
    model=DatabaseRestore,
    kind="DatabaseRestore",
    plural="databaserestores",
    short_names=("dbrestore",),
    columns=(
        column("Phase", "string", ".status.phase", "Where the restore is."),
        column("Backup", "string", ".spec.backupRef.name", "The DatabaseBackup restored."),
        column("Duration", "number", ".status.durationSeconds", "Seconds the restore took."),
        AGE,
    ),
)
