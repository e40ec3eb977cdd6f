"""Why the engine refused or stopped: one small hierarchy, each error a clear one-line message.

Callers (CLI, operator) catch ``EngineError`` to report any of them; the subclasses carry the
details a status or an exit code needs. A migration that fails while running is not raised by
``Migrator.apply``: it is a result in the returned report (``RunReport.failed``), because the
migrations applied before it and the history row matter as much as the failure.
``RunReport.raise_for_failure`` turns it into ``MigrationFailed`` for callers that prefer that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubemigrate.engine.migrate.results import MigrationResult


class EngineError(Exception):
    """Base of every error the engine raises on purpose; ``str()`` is one line, no secrets."""


class ConnectionFailed(EngineError):
    """The database could not be reached or refused the login. The message names the database
    by the parts of its connection string that are safe to show, never the string itself."""

    reason = "ConnectionFailed"


class AuthenticationFailed(ConnectionFailed):
    """The server refused the login (SQLSTATE 28P01 or 28000: a wrong password or user, or no
    pg_hba.conf entry). A fix of the credentials cures it, not time: retrying soon only adds
    failed logins, which trip lock-outs and alerts."""

    reason = "AuthenticationFailed"


class InvalidUrl(ConnectionFailed, ValueError):
    """The database URL is not a PostgreSQL connection string. Its message never quotes the
    value, which may be anything a Secret holds (a token, a password). Raised by every engine
    call before anything is tried: one class for the migrator and the backup functions, so a
    caller has one rule for it."""

    reason = "InvalidDatabaseUrl"


class ConnectionLost(ConnectionFailed):
    """The connection was lost while a migration ran (the server went away, or the migration
    ended its own backend); the message names the migration. What committed before is in the
    history, and the next run starts from there."""

    def __init__(self, message: str, doing: str) -> None:
        super().__init__(message)
        self.doing = doing


class LockTimeout(EngineError):
    """Another runner held the database's migration lock past the deadline."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class InvalidSources(EngineError):
    """The given migrations contradict themselves (duplicate versions, bad versions)."""


class HistoryTooNew(EngineError):
    """The history table was written by a newer kubemigrate that this one cannot read safely."""


class DriftDetected(EngineError):
    """Applied migrations whose SQL has changed since; ``repair`` accepts the new text."""

    def __init__(self, versions: Sequence[str]) -> None:
        self.versions = list(versions)
        super().__init__(
            "checksum mismatch for applied migration(s) "
            + ", ".join(self.versions)
            + ": their SQL changed after they were applied (restore it, or run repair to accept it)"
        )


class OutOfOrder(EngineError):
    """Pending migrations older than the newest applied one, without ``allow_out_of_order``."""

    def __init__(self, versions: Sequence[str], newest_applied: str) -> None:
        self.versions = list(versions)
        self.newest_applied = newest_applied
        super().__init__(
            "pending migration(s) "
            + ", ".join(self.versions)
            + f" are older than the newest applied version {newest_applied}"
            " (allow out-of-order application to run them)"
        )


class NoRollbackSql(EngineError):
    """A migration to revert has no down SQL; nothing was changed."""

    def __init__(self, versions: Sequence[str]) -> None:
        self.versions = list(versions)
        super().__init__(
            "cannot roll back: no rollback SQL for migration(s) "
            + ", ".join(self.versions)
            + "; nothing was changed"
        )


class TransactionForbidden(EngineError):
    """A transactional migration holds a statement PostgreSQL refuses in a transaction block."""

    def __init__(
        self, version: str, statement_index: int, line: int, command: str, reason: str
    ) -> None:
        self.version = version
        self.statement_index = statement_index
        self.line = line
        self.command = command
        super().__init__(
            f"migration {version}, statement {statement_index} (line {line}, {command}): {reason};"
            " nothing was run"
        )


class NeedsRepair(EngineError):
    """A no-transaction migration stopped in a statement whose outcome the catalog cannot
    tell; ``repair`` records what a person found. Nothing was run."""

    def __init__(self, version: str, message: str) -> None:
        self.version = version
        super().__init__(message)


class MigrationFailed(EngineError):
    """A migration failed while running; ``result`` holds SQLSTATE, message and position."""

    def __init__(self, result: MigrationResult) -> None:
        self.result = result
        where = ""
        if result.statement_index is not None:
            where += f", statement {result.statement_index}"
        if result.line is not None:
            where += f", line {result.line}"
        state = f" [{result.sqlstate}]" if result.sqlstate else ""
        super().__init__(
            f"{result.kind} of migration {result.version} failed{where}{state}: {result.error}"
        )


class BackupError(EngineError):
    """A backup, verification or restore failed."""

    reason = "BackupFailed"


class ToolMissing(BackupError):
    """pg_dump, pg_restore or psql is not installed (or not where we were told)."""

    reason = "ToolMissing"


class ToolTooOld(BackupError):
    """pg_dump is older than the server: it would refuse, or miss newer objects."""

    reason = "ToolTooOld"


class ToolFailed(BackupError):
    """A client program exited non-zero; the message is its first error line."""

    reason = "ToolFailed"


class InvalidBackup(BackupError):
    """The backup file is missing, unreadable, truncated, or not what its sidecar says."""

    reason = "InvalidBackup"


class TargetNotEmpty(BackupError):
    """The restore target already holds objects and ``clean`` was not asked for."""

    reason = "TargetNotEmpty"


class UnsupportedOption(BackupError):
    """Options that cannot be combined, e.g. ``clean`` for a plain-SQL backup."""

    reason = "UnsupportedOption"


class StorageError(BackupError):
    """Object storage failed a request (unreachable endpoint, missing bucket, server error)."""

    reason = "ObjectStoreFailed"


class StorageDenied(StorageError):
    """Object storage refused the credentials, or found none: never quotes their values."""

    reason = "ObjectStoreAccessDenied"


class ParseError(ValueError):
    """SQL the PostgreSQL grammar rejects; ``line`` is 1-based, ``message`` the parser's."""

    def __init__(self, message: str, line: int, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        where = f"line {line}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")


class SchemaQueryFailed(EngineError):
    """A fleet's schemas query failed, or returned something that is not schema names."""

    reason = "SchemaQueryFailed"
