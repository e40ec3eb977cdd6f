"""Why a backup, a verification or a restore stopped: each a one-line message, no password.

They extend ``EngineError`` so the CLI and the operator report them like every other engine
error. ``reason`` is the CamelCase word a resource's ``status.reason`` carries.
"""

from __future__ import annotations

from kubemigrate.engine.errors import EngineError


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
