"""The MigrationSet kind: an application's whole migration directory applied as one resource.

The files come from ConfigMaps (keys are the CLI's file names) or from a directory in the
application's own image; one Job runs the engine on them. It shares the database's advisory
lock and history table with the Migrations of the same database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from kubemigrate.models.base import (
    AGE,
    ObjectMeta,
    ObjectName,
    Resource,
    Seconds,
    SpecModel,
    StatusModel,
    cel,
    column,
    exactly_one,
    validations,
)
from kubemigrate.models.common import DatabaseRef, LocalObjectReference, ReconciledStatus
from kubemigrate.models.fleet import (
    MAX_FAILED_TARGETS,
    FailedTarget,
    Rollout,
    TargetCounts,
    Targets,
)
from kubemigrate.models.migration import (
    IDENTIFIER_PATTERN,
    MAX_VERSION_LENGTH,
    VERSION_PATTERN,
    MigrationBackup,
    Preflight,
    PreflightCheck,
    Timeouts,
)

MAX_CONFIGMAPS = 32
"""A directory over 1 MiB is split across ConfigMaps; 32 of them hold 32 MiB of SQL."""
MAX_RECENT = 20
"""Migrations of the last run listed in status.recent (the newest)."""
MAX_PULL_SECRETS = 16
MAX_VERSIONS = 20000
"""Versions listed in status.versions: far more than any application keeps."""
ONE_SOURCE = "exactly one of spec.source.configMaps and spec.source.image must be set"
ONE_TARGET = "exactly one of spec.database and spec.targets must be set"
IMAGE_PATH_PATTERN = r"^/[^\x00]*$"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


class MigrationSetPhase(StrEnum):
    """As Migration's phases, for the whole run."""

    PENDING = "Pending"
    PREFLIGHT = "Preflight"
    BACKING_UP = "BackingUp"
    APPLYING = "Applying"
    ROLLING_BACK = "RollingBack"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DRY_RUN_SUCCEEDED = "DryRunSucceeded"
    HALTED = "Halted"


class ConfigMapSource(SpecModel):
    """A ConfigMap whose keys are file names (``kubectl create configmap --from-file=DIR``)."""

    name: ObjectName = Field(description="Name of the ConfigMap, in this namespace.")


class ImageSource(SpecModel):
    """The application's image and the directory in it that holds the migration files."""

    reference: str = Field(
        description="The image, e.g. registry.example.com/orders:1.4.2.",
        min_length=1,
        max_length=1024,
    )
    path: str = Field(
        description="Absolute path of the migrations directory inside the image.",
        min_length=1,
        max_length=1024,
        pattern=IMAGE_PATH_PATTERN,
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="imagePullPolicy of the init container. Default: Kubernetes' default."
    )
    pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list,
        description="Secrets to pull the image with (the Job pod's imagePullSecrets).",
        max_length=MAX_PULL_SECRETS,
    )


class SetSource(SpecModel):
    """Where the migration files are: ConfigMaps, or a directory in an image."""

    model_config = ConfigDict(
        json_schema_extra=validations(cel(exactly_one("configMaps", "image"), ONE_SOURCE))
    )

    config_maps: list[ConfigMapSource] | None = Field(
        None,
        description=(
            "ConfigMaps whose keys are the CLI's file names (<version>_<name>.up.sql, "
            ".down.sql, Flyway's V…__/U…__); several merge, a file name in two is an error."
        ),
        min_length=1,
        max_length=MAX_CONFIGMAPS,
    )
    image: ImageSource | None = Field(
        None, description="A directory in an image, copied by an init container."
    )

    @model_validator(mode="after")
    def _one(self) -> SetSource:
        if (self.config_maps is None) == (self.image is None):
            raise ValueError(ONE_SOURCE)
        return self


class MigrationSetSpec(SpecModel):
    """Which files, which database (or fleet of them), and up (or down) to which version."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(exactly_one("database", "targets"), ONE_TARGET),
            cel(
                "!has(self.rollout) || has(self.targets)",
                "spec.rollout needs spec.targets (a single database has no rollout)",
            ),
            cel(
                "!has(self.targets) || !has(self.backup)",
                "spec.backup is for one database; back up a fleet's databases with "
                "DatabaseBackupSchedules",
            ),
        )
    )

    database: DatabaseRef | None = Field(None, description="The database to migrate.")
    targets: Targets | None = Field(
        None, description="Many databases, or many schemas of one database, instead of one."
    )
    rollout: Rollout | None = Field(
        None, description="For targets: canary, parallelism, failures tolerated, pause."
    )
    source: SetSource = Field(description="Where the migration files are.")
    target_version: str | None = Field(
        None,
        description=(
            "Apply up to this version; lower than the applied version rolls back down to it "
            "with the down files, newest first; '0' rolls back everything. Default: the newest "
            "version in the source."
        ),
        min_length=1,
        max_length=MAX_VERSION_LENGTH,
        pattern=VERSION_PATTERN,
    )
    dry_run: bool = Field(
        False,
        description=(
            "Run the pending migrations inside transactions that are rolled back, and report "
            "the plan in status. Default: false."
        ),
    )
    backup: MigrationBackup | None = Field(
        None, description="Back up once before the run: on when present, unless disabled."
    )
    preflight: Preflight = Field(
        default=Preflight(), description="Checks once before the run. Default: enabled."
    )
    timeouts: Timeouts | None = Field(
        None, description="Lock-wait and statement limits for every migration of the run."
    )
    history_schema: str = Field(
        "kubemigrate",
        description="Schema of the history table. Default: kubemigrate.",
        min_length=1,
        max_length=63,
        pattern=IDENTIFIER_PATTERN,
    )
    allow_out_of_order: bool = Field(
        False,
        description="Apply pending versions lower than the newest applied one. Default: false.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> MigrationSetSpec:
        if (self.database is None) == (self.targets is None):
            raise ValueError(ONE_TARGET)
        if self.rollout is not None and self.targets is None:
            raise ValueError("spec.rollout needs spec.targets")
        if self.targets is not None and self.backup is not None:
            raise ValueError("spec.backup is for one database, not for spec.targets")
        return self

    @property
    def backup_enabled(self) -> bool:
        return self.database is not None and self.backup is not None and self.backup.enabled

    @property
    def plan(self) -> Rollout:
        """The rollout, with its defaults when not given."""
        return self.rollout or Rollout()


class SetRun(StatusModel):
    """The last run: when, what it did, and its Job."""

    started_at: datetime | None = Field(None, description="When the run started.")
    completed_at: datetime | None = Field(None, description="When it ended.")
    duration_seconds: Seconds | None = Field(None, description="How long it took.")
    applied: int | None = Field(None, description="Migrations applied by the run.")
    rolled_back: int | None = Field(None, description="Migrations rolled back by the run.")
    rows_affected: int | None = Field(None, description="Rows the run changed.")
    job: str | None = Field(None, description="The Job that ran it.")


class RecentMigration(StatusModel):
    """One migration of the last run."""

    version: str = Field(description="The migration's version.")
    description: str | None = Field(None, description="Its description (from the file name).")
    kind: str | None = Field(None, description="apply, rollback or dry_run.")
    duration_seconds: Seconds | None = Field(None, description="How long it took.")
    rows_affected: int | None = Field(None, description="Rows it changed.")
    tables_created: list[str] = Field(default_factory=list, description="Tables it created.")


class SetError(StatusModel):
    """The error that stopped the last run, as PostgreSQL reported it; never credentials."""

    version: str | None = Field(None, description="The migration that failed.")
    file: str | None = Field(None, description="Its file name.")
    sqlstate: str | None = Field(None, description="PostgreSQL's SQLSTATE, e.g. 42P07.")
    message: str = Field(description="The error message.")
    statement: str | None = Field(None, description="The statement that failed.")
    line: int | None = Field(None, description="1-based line of that statement in the file.")


class SetDryRun(StatusModel):
    """What the last dry run would have done; every transaction was rolled back."""

    completed_at: datetime | None = Field(None, description="When it finished.")
    migrations: int | None = Field(None, description="Migrations run and rolled back.")
    rows_affected: int | None = Field(None, description="Rows they changed.")
    tables_created: list[str] = Field(default_factory=list, description="Tables they created.")
    versions: list[str] = Field(default_factory=list, description="The plan, in order.")


class MigrationSetStatus(ReconciledStatus):
    """What the operator last observed and did; the database's history table is the truth."""

    phase: MigrationSetPhase | None = Field(None, description="Where the set is.")
    source_checksum: str | None = Field(
        None, description="sha256 over every file's name and content."
    )
    current_version: str | None = Field(
        None, description="The highest version applied in the database."
    )
    target_version: str | None = Field(None, description="The resolved target version.")
    versions: list[str] = Field(
        default_factory=list,
        description=(
            "The versions of the source, in order (for the operator: a Migration of the same "
            "database with one of them is refused)."
        ),
        max_length=MAX_VERSIONS,
    )
    applied: int | None = Field(None, description="Versions of the source applied.")
    pending: int | None = Field(
        None, description="Versions still to apply (or to roll back) to reach the target."
    )
    last_run: SetRun | None = Field(None, description="The last run.")
    recent: list[RecentMigration] = Field(
        default_factory=list,
        description=f"The last migrations of the last run (at most {MAX_RECENT}).",
        max_length=MAX_RECENT,
    )
    last_error: SetError | None = Field(None, description="The error of the last failed run.")
    backup_ref: LocalObjectReference | None = Field(
        None, description="The DatabaseBackup taken before the run."
    )
    preflight: list[PreflightCheck] = Field(
        default_factory=list,
        description="Results of the last preflight checks.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    dry_run: SetDryRun | None = Field(None, description="The result of the last dry run.")
    run_key: str | None = Field(
        None, description="What the last run was for (source checksum, target, generation)."
    )
    failed_attempts: int | None = Field(
        None, description="Consecutive failures time may cure; the retry delay doubles."
    )
    next_attempt_at: datetime | None = Field(None, description="When the next attempt is due.")
    targets: TargetCounts | None = Field(None, description="For targets: counts by state.")
    failed_targets: list[FailedTarget] = Field(
        default_factory=list,
        description=f"For targets: the first {MAX_FAILED_TARGETS} failed targets and why.",
        max_length=MAX_FAILED_TARGETS,
    )
    wave: int | None = Field(None, description="For targets: the current wave (0: the canary).")
    rollout_key: str | None = Field(
        None, description="For targets: what the rollout is for (source checksum, target)."
    )


class MigrationSet(SpecModel):
    """A directory of PostgreSQL migrations applied to one database by the kubemigrate operator."""

    api_version: Literal["kubemigrate.dev/v1alpha1"] = "kubemigrate.dev/v1alpha1"
    kind: Literal["MigrationSet"] = "MigrationSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: MigrationSetSpec = Field(description="Which files, which database, which version.")
    status: MigrationSetStatus | None = Field(
        None, description="What the operator last observed and did."
    )


RESOURCE = Resource(
    model=MigrationSet,
    kind="MigrationSet",
    plural="migrationsets",
    short_names=("migset",),
    columns=(
        column("Target", "string", ".status.targetVersion", "The resolved target version."),
        column("Current", "string", ".status.currentVersion", "The highest applied version."),
        column("Pending", "integer", ".status.pending", "Versions still to apply or revert."),
        column("Phase", "string", ".status.phase", "Where the set is."),
        AGE,
        column("Reason", "string", ".status.reason", "Why it is in this phase.", priority=1),
        column("Targets", "integer", ".status.targets.total", "Fleet: targets.", priority=1),
        column("Done", "integer", ".status.targets.succeeded", "Fleet: succeeded.", priority=1),
        column("Failed", "integer", ".status.targets.failed", "Fleet: failed.", priority=1),
        column("Wave", "integer", ".status.wave", "Fleet: the current wave.", priority=1),
    ),
)
