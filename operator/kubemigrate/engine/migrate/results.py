"""What the engine returns: plain, typed, immutable records the CLI prints and the operator copies
into a resource's status. No database handles in here, so they can be serialised as they are
(``dataclasses.asdict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kubemigrate.engine.errors import MigrationFailed

Kind = Literal["apply", "rollback", "dry_run", "repair", "baseline"]
"""What a run did to a version; also the ``kind`` column of the history table."""

Status = Literal["pending", "success", "failed", "skipped"]
"""How a run of one migration ended; ``pending`` is recorded before a no-transaction migration
runs and stays the last word only if it was interrupted. ``skipped`` is for dry runs of
migrations that cannot run inside the dry run's transaction."""

State = Literal["pending", "applied", "rolled_back", "failed", "incomplete", "missing", "drifted"]
"""Where a version stands: ``incomplete`` is a no-transaction migration that started and did not
record an end (running now, or interrupted); ``missing`` is applied but absent from the given
sources; ``drifted`` is applied with a checksum that differs from its source."""


@dataclass(frozen=True)
class Origin:
    """Which Kubernetes object asked for a run; recorded in history, empty for the CLI."""

    resource_name: str | None = None
    resource_uid: str | None = None
    resource_generation: int | None = None


@dataclass(frozen=True)
class MigrationResult:
    """One migration's run: timing, what it changed, and where it failed if it did."""

    version: str
    description: str
    kind: Kind
    status: Status
    checksum: str
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    rows_affected: int = 0
    tables_created: tuple[str, ...] = ()
    tables_altered: tuple[str, ...] = ()
    tables_dropped: tuple[str, ...] = ()
    sqlstate: str | None = None
    error: str | None = None
    statement_index: int | None = None
    line: int | None = None
    attempts: int = 1
    blocked_by: str | None = None
    """Sessions seen holding a lock the migration waited for until lock_timeout (its retries,
    ``attempts``), by pid, application and query start: say it, with or without a failure."""
    batches: int | None = None
    """For a migration with batched statements: the batches this run committed (a dry run:
    the one it tried)."""
    rows_estimate: int | None = None
    """A dry run of a batched statement: the rows it would change in all, estimated."""

    @property
    def ok(self) -> bool:
        return self.status in ("success", "skipped")


@dataclass(frozen=True)
class RunReport:
    """The outcome of one engine call: each migration touched, in the order they ran."""

    run_id: str
    kind: Kind
    started_at: datetime
    finished_at: datetime
    results: tuple[MigrationResult, ...] = ()
    schema_version: str | None = None
    """Highest applied version after the run (unchanged by a dry run); None when none is."""

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> MigrationResult | None:
        """The migration that stopped the run, if one did."""
        return next((r for r in self.results if not r.ok), None)

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def rows_affected(self) -> int:
        return sum(r.rows_affected for r in self.results)

    @property
    def tables_created(self) -> tuple[str, ...]:
        return tuple(t for r in self.results for t in r.tables_created)

    def raise_for_failure(self) -> RunReport:
        """self, or MigrationFailed for the migration that failed."""
        failed = self.failed
        if failed is not None:
            raise MigrationFailed(failed)
        return self


@dataclass(frozen=True)
class AppliedRun:
    """The run that applied a version, as the history recorded it: its id, the migration's
    result (timing, rows, tables), and the resource that asked for it (if one did)."""

    run_id: str
    result: MigrationResult
    origin: Origin | None = None


@dataclass(frozen=True)
class VersionState:
    """One version as ``status`` sees it: the history's last word merged with the sources."""

    version: str
    description: str
    state: State
    checksum: str | None
    """The applied checksum when applied, else the source's."""
    applied_at: datetime | None = None
    duration_seconds: float | None = None
    rollback_available: bool = False
    source_checksum: str | None = None
    last_error: str | None = None
    sqlstate: str | None = None
    resume: str | None = None
    """For a version a run left midway (incomplete, or a no-transaction migration that failed
    after some of its statements): what the next run will do, in words."""


@dataclass(frozen=True)
class DriftedVersion:
    version: str
    applied_checksum: str
    source_checksum: str


@dataclass(frozen=True)
class ValidationReport:
    """Everything ``apply`` would refuse, found without changing anything or taking the lock."""

    drifted: tuple[DriftedVersion, ...] = ()
    pending: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    out_of_order: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())
    """Statements a transactional migration cannot run, transaction control in one, ..."""
    schema_version: str | None = None
    incomplete: tuple[str, ...] = ()
    """Versions a run left midway, each with what the next run will do (one that needs a
    person is a problem as well)."""

    @property
    def ok(self) -> bool:
        """No drift, nothing out of order, no statement that would be refused."""
        return not (self.drifted or self.out_of_order or self.problems)
