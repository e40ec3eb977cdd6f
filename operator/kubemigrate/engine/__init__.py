"""The engine: PostgreSQL only, no Kubernetes code (enforced by import-linter).

Three rooms over one shared layer:

- ``pg``: sessions, redaction, SQL literals, the server clock, libpq connection strings;
- ``migrate``: sources, planning, the migrator and its runners, history, the advisory lock;
- ``backup``: pg_dump/pg_restore, dump files, verification, row counts.

The names below are the engine's public face; the CLI and the controller import only these
(an import-linter contract holds them to it). Errors load at once (they are small and caught
everywhere); everything else loads on first use, so parsing the CLI's arguments never costs
importing the database driver or the SQL parser.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kubemigrate.engine.errors import (
    AuthenticationFailed,
    BackupError,
    ConnectionFailed,
    ConnectionLost,
    DriftDetected,
    EngineError,
    HistoryTooNew,
    InvalidBackup,
    InvalidSources,
    InvalidUrl,
    LockTimeout,
    MigrationFailed,
    NeedsRepair,
    NoRollbackSql,
    OutOfOrder,
    ParseError,
    SchemaQueryFailed,
    StorageDenied,
    StorageError,
    TargetNotEmpty,
    ToolFailed,
    ToolMissing,
    ToolTooOld,
    TransactionForbidden,
    UnsupportedOption,
)

if TYPE_CHECKING:
    from kubemigrate.engine.backup.dump import BackupResult, take_backup
    from kubemigrate.engine.backup.dumpfile import (
        FORMATS,
        BackupMeta,
        Format,
        delete_at,
        delete_backup,
        read_sidecar,
    )
    from kubemigrate.engine.backup.objstore import ObjectLocation, is_remote
    from kubemigrate.engine.backup.restore import RestoreResult, restore_backup
    from kubemigrate.engine.backup.rowcounts import CountCheck
    from kubemigrate.engine.backup.verify import VerifyResult, trial_restore, verify_backup
    from kubemigrate.engine.migrate.batchprogress import BatchProgress
    from kubemigrate.engine.migrate.checksum import directory_files, files_checksum
    from kubemigrate.engine.migrate.durations import parse_duration
    from kubemigrate.engine.migrate.migrator import Migrator
    from kubemigrate.engine.migrate.preflight import PreflightReport, run_preflight
    from kubemigrate.engine.migrate.results import (
        AppliedRun,
        MigrationResult,
        Origin,
        RunReport,
        ValidationReport,
        VersionState,
    )
    from kubemigrate.engine.migrate.setpreflight import run_set_preflight
    from kubemigrate.engine.migrate.sources import MigrationSource, SourceError, load_directory
    from kubemigrate.engine.migrate.statements import split_statements
    from kubemigrate.engine.migrate.versions import validate_version, version_key
    from kubemigrate.engine.pg.cancel import cancel_sessions
    from kubemigrate.engine.pg.libpq import password_of
    from kubemigrate.engine.pg.redact import redact
    from kubemigrate.engine.pg.schemas import query_schemas
    from kubemigrate.engine.pg.target import secrets_of
    from kubemigrate.engine.pg.tenant import check_url, in_schema, schema_exists

_LAZY = {
    "kubemigrate.engine.backup.dump": ("BackupResult", "take_backup"),
    "kubemigrate.engine.backup.dumpfile": (
        "FORMATS",
        "BackupMeta",
        "Format",
        "delete_at",
        "delete_backup",
        "directory_files",
        "files_checksum",
        "read_sidecar",
    ),
    "kubemigrate.engine.backup.objstore": ("ObjectLocation", "is_remote"),
    "kubemigrate.engine.backup.restore": ("RestoreResult", "restore_backup"),
    "kubemigrate.engine.backup.rowcounts": ("CountCheck",),
    "kubemigrate.engine.backup.verify": ("VerifyResult", "trial_restore", "verify_backup"),
    "kubemigrate.engine.migrate.batchprogress": ("BatchProgress",),
    "kubemigrate.engine.migrate.checksum": ("directory_files", "files_checksum"),
    "kubemigrate.engine.migrate.durations": ("parse_duration",),
    "kubemigrate.engine.migrate.migrator": ("Migrator",),
    "kubemigrate.engine.migrate.preflight": ("PreflightReport", "run_preflight"),
    "kubemigrate.engine.migrate.results": (
        "AppliedRun",
        "MigrationResult",
        "Origin",
        "RunReport",
        "ValidationReport",
        "VersionState",
    ),
    "kubemigrate.engine.migrate.setpreflight": ("run_set_preflight",),
    "kubemigrate.engine.migrate.sources": ("MigrationSource", "SourceError", "load_directory"),
    "kubemigrate.engine.migrate.statements": ("split_statements",),
    "kubemigrate.engine.migrate.versions": ("validate_version", "version_key"),
    "kubemigrate.engine.pg.cancel": ("cancel_sessions",),
    "kubemigrate.engine.pg.libpq": ("password_of",),
    "kubemigrate.engine.pg.redact": ("redact",),
    "kubemigrate.engine.pg.schemas": ("query_schemas",),
    "kubemigrate.engine.pg.target": ("secrets_of",),
    "kubemigrate.engine.pg.tenant": ("check_url", "in_schema", "schema_exists"),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "FORMATS",
    "AppliedRun",
    "AuthenticationFailed",
    "BackupError",
    "BackupMeta",
    "BackupResult",
    "BatchProgress",
    "ConnectionFailed",
    "ConnectionLost",
    "CountCheck",
    "DriftDetected",
    "EngineError",
    "Format",
    "HistoryTooNew",
    "InvalidBackup",
    "InvalidSources",
    "InvalidUrl",
    "LockTimeout",
    "MigrationFailed",
    "MigrationResult",
    "MigrationSource",
    "Migrator",
    "NeedsRepair",
    "NoRollbackSql",
    "ObjectLocation",
    "Origin",
    "OutOfOrder",
    "ParseError",
    "PreflightReport",
    "RestoreResult",
    "RunReport",
    "SchemaQueryFailed",
    "SourceError",
    "StorageDenied",
    "StorageError",
    "TargetNotEmpty",
    "ToolFailed",
    "ToolMissing",
    "ToolTooOld",
    "TransactionForbidden",
    "UnsupportedOption",
    "ValidationReport",
    "VerifyResult",
    "VersionState",
    "cancel_sessions",
    "check_url",
    "delete_at",
    "delete_backup",
    "directory_files",
    "files_checksum",
    "in_schema",
    "is_remote",
    "load_directory",
    "parse_duration",
    "password_of",
    "query_schemas",
    "read_sidecar",
    "redact",
    "restore_backup",
    "run_preflight",
    "run_set_preflight",
    "schema_exists",
    "secrets_of",
    "split_statements",
    "take_backup",
    "trial_restore",
    "validate_version",
    "verify_backup",
    "version_key",
]


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
