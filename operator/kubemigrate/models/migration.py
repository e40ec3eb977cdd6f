"""The Migration kind: one versioned SQL change to one database, and what happened to it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from kubemigrate.models.base import (
    AGE,
    Duration,
    ObjectMeta,
    ObjectName,
    Resource,
    SpecModel,
    StatusModel,
    at_most,
    cel,
    column,
    exactly_one,
    validations,
)
from kubemigrate.models.common import (
    DatabaseRef,
    LastError,
    LocalObjectReference,
    ReconciledStatus,
    SqlSource,
)
from kubemigrate.models.storage import BackupStorage

VERSION_PATTERN = r"^[0-9]+([._][0-9]+)*$"
"""Kept identical to kubemigrate.engine.migrate.versions.VERSION_PATTERN (a unit test checks)."""

MAX_VERSION_LENGTH = 64

SQL_MAX_LENGTH = 1024 * 1024
"""1 MiB. The whole object must fit etcd's 1.5 MiB; larger scripts belong in sqlFrom."""

IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_$]*$"

MAX_DEPENDENCIES = 64

Sql = Annotated[str, StringConstraints(min_length=1, max_length=SQL_MAX_LENGTH)]

NOT_BLANK = validations(cel("self.trim() != ''", "must contain SQL, not only whitespace"))

# Messages shared by the CEL rules and the Python validators, so both say the same thing.
ONE_SQL = "exactly one of spec.sql and spec.sqlFrom must be set"
ONE_ROLLBACK_SQL = "at most one of spec.rollbackSql and spec.rollbackSqlFrom may be set"
RESTORE_NEEDS_BACKUP = "rollbackStrategy: restore needs spec.backup enabled (the restore point)"
DRY_RUN_NEEDS_TX = (
    "dryRun needs transactional: true (a dry run applies inside a transaction and rolls it back)"
)
SELF_DEPENDENCY = "a Migration cannot depend on itself"


class RollbackStrategy(StrEnum):
    SQL = "sql"
    RESTORE = "restore"


class MigrationPhase(StrEnum):
    PENDING = "Pending"
    PREFLIGHT = "Preflight"
    BACKING_UP = "BackingUp"
    APPLYING = "Applying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    DRY_RUN_SUCCEEDED = "DryRunSucceeded"


class MigrationBackup(SpecModel):
    """A backup taken before applying; it is also the restore point for rollbackStrategy restore."""

    enabled: bool = Field(True, description="Take the backup. Default: true.")
    storage: BackupStorage | None = Field(
        None,
        description="Where to write it. Default: the operator's configured backup storage.",
    )


MAX_LOCK_TIMEOUT = "1h"
"""A lock wait longer than this blocks every query queued behind the migration's lock request."""
MAX_STATEMENT_TIMEOUT = "24h"
"""Within PostgreSQL's limit for statement_timeout (INT_MAX milliseconds, about 24.8 days)."""
LockTimeout = Annotated[Duration, *at_most(MAX_LOCK_TIMEOUT, "timeouts.lock")]
StatementTimeout = Annotated[Duration, *at_most(MAX_STATEMENT_TIMEOUT, "timeouts.statement")]


class Timeouts(SpecModel):
    """Limits that keep a migration from blocking the database; durations like 5s, 30m, 1h30m."""

    lock: LockTimeout | None = Field(
        None,
        description=(
            "PostgreSQL lock_timeout: how long one statement may wait for a lock before the "
            f"transaction is retried (e.g. 5s; at most {MAX_LOCK_TIMEOUT}). Default: the "
            "operator's setting."
        ),
    )
    statement: StatementTimeout | None = Field(
        None,
        description=(
            "PostgreSQL statement_timeout: the longest one statement may run (e.g. 30m; at most "
            f"{MAX_STATEMENT_TIMEOUT}). Default: the operator's setting."
        ),
    )


class Preflight(SpecModel):
    """Checks run as a Job before applying: connectivity, history, lock blockers, long queries."""

    enabled: bool = Field(True, description="Run the preflight checks. Default: true.")
    dry_run: bool = Field(
        False,
        description=(
            "Also apply the migration inside a transaction that is rolled back, as part of "
            "preflight. Default: false."
        ),
    )


class MigrationSpec(SpecModel):
    """What to apply, where, and how to revert it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(exactly_one("sql", "sqlFrom"), ONE_SQL),
            cel("!(has(self.rollbackSql) && has(self.rollbackSqlFrom))", ONE_ROLLBACK_SQL),
            cel(
                "self.rollbackStrategy != 'restore' || (has(self.backup) && self.backup.enabled)",
                RESTORE_NEEDS_BACKUP,
                field_path=".rollbackStrategy",
            ),
            cel(
                "!self.dryRun || self.transactional",
                DRY_RUN_NEEDS_TX,
                field_path=".dryRun",
            ),
        )
    )

    database: DatabaseRef = Field(
        description=(
            "The database to migrate. Required; immutable once applied (a changed database "
            "would be migrated again: create a new Migration for it)."
        )
    )
    version: str = Field(
        description=(
            "Ordering key within one database: digits separated by '.' or '_', e.g. '001' or "
            "'2024.12.20.1'. Segments compare as numbers. Required; immutable once applied."
        ),
        min_length=1,
        max_length=MAX_VERSION_LENGTH,
        pattern=VERSION_PATTERN,
        json_schema_extra=validations(
            cel(
                f"self.matches('{VERSION_PATTERN}')",
                "version must be digits separated by '.' or '_', e.g. '001' or '2024.12.20.1'",
            )
        ),
    )
    description: str | None = Field(None, description="Free text.", max_length=4096)
    sql: Sql | None = Field(
        None,
        description=(
            "The forward SQL, at most 1 MiB. Exactly one of sql and sqlFrom is required. "
            "Immutable once applied. Over about 256 KiB, use kubectl apply --server-side "
            "(client-side apply copies the object into a 256 KiB annotation) or sqlFrom."
        ),
        json_schema_extra=NOT_BLANK,
    )
    sql_from: SqlSource | None = Field(
        None,
        description="The forward SQL from a ConfigMap, for large scripts. Immutable once applied.",
    )
    rollback_sql: Sql | None = Field(
        None,
        description=(
            "The reverse SQL, run when rollback is set. Without it (or a pre-migration backup) "
            "the migration cannot be rolled back. Immutable once applied."
        ),
        json_schema_extra=NOT_BLANK,
    )
    rollback_sql_from: SqlSource | None = Field(
        None, description="The reverse SQL from a ConfigMap. Immutable once applied."
    )
    rollback: bool = Field(
        False,
        description=(
            "Set true to revert the migration; set false again to re-apply it. Default: false."
        ),
    )
    rollback_strategy: RollbackStrategy = Field(
        RollbackStrategy.SQL,
        description=(
            "How to revert: 'sql' runs rollbackSql; 'restore' restores the backup taken before "
            "the migration (needs backup enabled). Default: sql."
        ),
    )
    depends_on: list[ObjectName] = Field(
        default_factory=list,
        description="Names of Migrations in this namespace that must be applied first.",
        max_length=MAX_DEPENDENCIES,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    transactional: bool = Field(
        True,
        description=(
            "Apply in one transaction. Set false for statements PostgreSQL refuses inside a "
            "transaction, such as CREATE INDEX CONCURRENTLY. Default: true."
        ),
    )
    dry_run: bool = Field(
        False,
        description=(
            "Apply inside a transaction that is rolled back and report what would change in "
            "status.dryRun; the database is left as it was. Default: false."
        ),
    )
    verify_sql: Sql | None = Field(
        None,
        description=(
            "A query run after applying, in the same transaction: the migration fails unless it "
            "returns no rows or a single true value."
        ),
        json_schema_extra=NOT_BLANK,
    )
    backup: MigrationBackup | None = Field(
        None,
        description="Back up before applying: on when present, unless enabled is false.",
    )
    timeouts: Timeouts | None = Field(None, description="Lock-wait and statement limits.")
    preflight: Preflight = Field(
        default=Preflight(), description="Checks before applying. Default: enabled."
    )
    history_schema: str = Field(
        "kubemigrate",
        description=(
            "Schema of the history table in the database. Default: kubemigrate. Immutable once "
            "applied (the history in the old schema records this migration)."
        ),
        min_length=1,
        max_length=63,
        pattern=IDENTIFIER_PATTERN,
    )
    allow_out_of_order: bool = Field(
        False,
        description=(
            "Apply even if a higher version is already applied to the database. Default: false."
        ),
    )
    paused: bool = Field(
        False,
        description=(
            "Pause a running batched step (-- kubemigrate: batch) after its current batch; "
            "set false to resume. Committed batches stay; nothing else is held but the "
            "migration lock. Default: false."
        ),
    )

    @property
    def backup_enabled(self) -> bool:
        """Whether to back up first: the backup object is present and not disabled."""
        return self.backup is not None and self.backup.enabled

    @model_validator(mode="after")
    def _consistent(self) -> MigrationSpec:
        """The same rules as the CRD's CEL, for manifests checked outside a cluster."""
        if (self.sql is None) == (self.sql_from is None):
            raise ValueError(ONE_SQL)
        if self.rollback_sql is not None and self.rollback_sql_from is not None:
            raise ValueError(ONE_ROLLBACK_SQL)
        texts = {"sql": self.sql, "rollbackSql": self.rollback_sql, "verifySql": self.verify_sql}
        for name, text in texts.items():
            if text is not None and not text.strip():
                raise ValueError(f"spec.{name} must contain SQL, not only whitespace")
        if self.rollback_strategy is RollbackStrategy.RESTORE and not self.backup_enabled:
            raise ValueError(RESTORE_NEEDS_BACKUP)
        if self.dry_run and not self.transactional:
            raise ValueError(DRY_RUN_NEEDS_TX)
        return self


class PreflightCheck(StatusModel):
    """The result of one preflight check."""

    name: str = Field(description="The check, e.g. connectivity, dependencies, lock-blockers.")
    passed: bool = Field(description="Whether the check passed.")
    message: str | None = Field(None, description="What the check found.")


class DryRunResult(StatusModel):
    """What a dry run would have changed; the transaction was rolled back."""

    completed_at: datetime | None = Field(None, description="When the dry run finished.")
    checksum: str | None = Field(None, description="Checksum of the SQL that was dry-run.")
    statements: int | None = Field(None, description="Statements executed.")
    rows_affected: int | None = Field(None, description="Rows the statements changed.")
    tables_created: list[str] = Field(default_factory=list, description="Tables created.")
    tables_altered: list[str] = Field(default_factory=list, description="Tables altered.")
    tables_dropped: list[str] = Field(default_factory=list, description="Tables dropped.")


class BatchProgressStatus(StatusModel):
    """Where a batched step stands while it runs (and where it ended)."""

    statement: int = Field(description="The batched statement's number in the SQL.")
    state: Literal["running", "paused", "lagging", "done"] = Field(
        description="running, paused (spec.paused), lagging (a standby lags), or done."
    )
    batches: int = Field(description="Batches committed, counting those of earlier runs.")
    rows_done: int = Field(description="Rows the committed batches changed.")
    rows_estimate: int | None = Field(None, description="Rows in all, estimated.")
    rows_per_second: int | None = Field(None, description="Rate of this run.")
    eta_seconds: int | None = Field(None, description="Estimated seconds left.")
    batch_size: int = Field(description="Rows per batch now (adaptive with target=).")
    updated_at: datetime | None = Field(None, description="When this was written.")


class MigrationStatus(ReconciledStatus):
    """What the operator last observed and did; mirrors the history table in the database."""

    phase: MigrationPhase | None = Field(None, description="Where the migration is.")
    checksum: str | None = Field(
        None,
        description=(
            "sha256 of the applied SQL. While set, the API server refuses changes to version, sql, "
            "sqlFrom, database and historySchema, and changes to a rollbackSql or "
            "rollbackSqlFrom already set."
        ),
    )
    rollback_available: bool | None = Field(
        None, description="Whether a rollback can be run now (rollbackSql or a backup exists)."
    )
    schema_version: str | None = Field(
        None, description="The highest version applied to the database after this run."
    )
    backup_ref: LocalObjectReference | None = Field(
        None, description="The DatabaseBackup taken before applying."
    )
    rows_affected: int | None = Field(None, description="Rows the last run changed.")
    tables_created: list[str] = Field(default_factory=list, description="Tables created.")
    tables_altered: list[str] = Field(default_factory=list, description="Tables altered.")
    tables_dropped: list[str] = Field(default_factory=list, description="Tables dropped.")
    last_error: LastError | None = Field(
        None, description="The error of the last failed run: SQLSTATE, message, where."
    )
    preflight: list[PreflightCheck] = Field(
        default_factory=list,
        description="Results of the last preflight checks.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    preflight_job: str | None = Field(None, description="Name of the last preflight Job.")
    waiting_for: str | None = Field(
        None, description="What a Pending migration waits for, e.g. a dependency or the lock."
    )
    run_id: str | None = Field(None, description="ID of the last run in the history table.")
    attempts: int | None = Field(None, description="Runs attempted for this generation.")
    failed_logins: int | None = Field(
        None,
        description=(
            "Refused logins in a row: a wrong password, or a Secret value that is no PostgreSQL "
            "URL. Each is retried with backoff; at the operator's loginAttempts (default 10) "
            "the resource is Failed and Stalled. Cleared by a login that works."
        ),
    )
    failed_attempts: int | None = Field(
        None,
        description=(
            "Consecutive failures that time may cure (a failed preflight, an unreachable "
            "database) for this generation; the retry delay doubles with each."
        ),
    )
    next_attempt_at: datetime | None = Field(
        None,
        description=(
            "When the operator tries again after such a failure; it waits until then even "
            "if it restarts."
        ),
    )
    dry_run: DryRunResult | None = Field(None, description="The result of the last dry run.")
    batch_progress: BatchProgressStatus | None = Field(
        None,
        description=(
            "Progress of the batched step running now (written every few seconds), or of the "
            "last one."
        ),
    )


APPLIED = "!has(oldSelf.status) || !has(oldSelf.status.checksum)"
"""CEL: the migration was not applied before this update. Only the root sees status and spec."""


def _unchanged_once_applied(field: str, *, may_add: bool = False) -> dict[str, str]:
    """A root-level transition rule freezing spec.<field> while the migration is applied.

    Written with has() rather than optional values (``self.spec.?f == oldSelf.spec.?f``): the API
    server cannot bound the cost of comparing optionals and refuses such a CRD. With may_add, a
    field that was unset may be set (adding a rollback to an applied migration is safe).
    """
    new, old = f"self.spec.{field}", f"oldSelf.spec.{field}"
    same = f"has({new}) && {new} == {old}"
    if may_add:
        rule = f"!has({old}) || ({same})"
        verb = "cannot change or be removed"
    else:
        rule = f"has({new}) == has({old}) && (!has({new}) || {new} == {old})"
        verb = "cannot change"
    return cel(
        f"{APPLIED} || ({rule})",
        f"spec.{field} {verb} once the migration is applied (status.checksum is set); "
        "create a new Migration with a higher version instead",
        field_path=f".spec.{field}",
    )


class Migration(SpecModel):
    """A versioned PostgreSQL schema migration, applied by the kubemigrate operator."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            *(
                _unchanged_once_applied(f)
                for f in ("version", "sql", "sqlFrom", "database", "historySchema")
            ),
            *(_unchanged_once_applied(f, may_add=True) for f in ("rollbackSql", "rollbackSqlFrom")),
            cel(
                "!has(self.spec.dependsOn) || !has(self.metadata.name) || "
                "!(self.metadata.name in self.spec.dependsOn)",
                SELF_DEPENDENCY,
                field_path=".spec.dependsOn",
            ),
        )
    )

    api_version: Literal["kubemigrate.dev/v1alpha1"] = "kubemigrate.dev/v1alpha1"
    kind: Literal["Migration"] = "Migration"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: MigrationSpec = Field(description="What to apply, where, and how to revert it.")
    status: MigrationStatus | None = Field(
        None, description="What the operator last observed and did."
    )

    @model_validator(mode="after")
    def _no_self_dependency(self) -> Migration:
        if self.metadata.name and self.metadata.name in self.spec.depends_on:
            raise ValueError(SELF_DEPENDENCY)
        return self


RESOURCE = Resource(
    model=Migration,
    kind="Migration",
    plural="migrations",
    short_names=("mig",),
    columns=(
        column("Version", "string", ".spec.version", "The migration's version."),
        column("Phase", "string", ".status.phase", "Where the migration is."),
        column("Duration", "number", ".status.durationSeconds", "Seconds the last run took."),
        column("Rollback", "boolean", ".status.rollbackAvailable", "Whether it can be reverted."),
        AGE,
        column("Reason", "string", ".status.reason", "Why it is in this phase.", priority=1),
    ),
)
