"""The DatabaseRestore kind: restoring a DatabaseBackup into the same or another database."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

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
from kubemigrate.models.storage import ObjectStoreStorage, RelativePath


class RestorePhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ObjectStoreBackup(ObjectStoreStorage):
    """A backup object in a bucket, found by its key: a backup from another cluster, or one
    whose DatabaseBackup is gone. Its sidecar (``<key>.meta.json``) must be beside it."""

    key: RelativePath = Field(
        description=(
            "The backup's key under prefix, e.g. 'prod/orders-1a2b3c4d.dump' (status.location "
            "of the DatabaseBackup that took it, without s3://bucket/ and the prefix). Required."
        )
    )


class RestoreSource(SpecModel):
    """Where a restore reads from when it names no DatabaseBackup."""

    object_store: ObjectStoreBackup = Field(description="A backup in object storage.")


class DatabaseRestoreSpec(SpecModel):
    """Which backup to restore, and into which database. Immutable: a restore runs once."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "a DatabaseRestore's spec cannot change; create a new DatabaseRestore instead",
            ),
            cel(
                "has(self.backupRef) != has(self.source)",
                "a DatabaseRestore needs exactly one of backupRef and source",
                field_path=".backupRef",
            ),
            cel(
                "!has(self.source) || has(self.database)",
                "a restore from source needs database (there is no DatabaseBackup to take it from)",
                field_path=".database",
            ),
        )
    )

    backup_ref: LocalObjectReference | None = Field(
        None,
        description=(
            "The DatabaseBackup to restore, in this namespace. Exactly one of backupRef and source."
        ),
    )
    source: RestoreSource | None = Field(
        None,
        description=(
            "A backup in object storage not tracked by a DatabaseBackup (e.g. after losing the "
            "cluster that took it). Needs database."
        ),
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
    jobs: int | None = Field(
        None,
        description=(
            "Parallel pg_restore workers (pg_restore -j), for directory backups. Not one "
            "transaction: a failed parallel restore leaves the target partly restored, so it "
            "cannot be combined with clean. Default: 1 (one transaction)."
        ),
        ge=1,
        le=32,
    )
    active_deadline_seconds: int = Field(
        3600,
        description="Seconds the restore Job may run before the restore fails. Default: 3600.",
        ge=1,
    )

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseRestoreSpec:
        if (self.backup_ref is None) == (self.source is None):
            raise ValueError("a DatabaseRestore needs exactly one of backupRef and source")
        if self.source is not None and self.database is None:
            raise ValueError("a restore from source needs database")
        return self


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
