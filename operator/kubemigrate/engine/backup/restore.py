"""Restoring a backup: all or nothing, never on top of live data by accident, then proven.

The dump is checked against its sidecar (sha256, size) before the target is touched; a target
that is not empty (see ``target``) is refused unless ``clean`` is asked for, which drops the
dump's objects first (``--clean --if-exists``). pg_restore runs with ``--single-transaction``
(psql likewise for plain dumps), so a failed restore leaves the target as it was; that is why
there is no parallel (``-j``) restore here: pg_restore cannot combine the two. Afterwards every
table recorded in the sidecar is counted and compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from kubemigrate.engine.backup import dumpfile, pgtools
from kubemigrate.engine.backup.contents import user_objects
from kubemigrate.engine.backup.dumpfile import BackupMeta, Format
from kubemigrate.engine.backup.rowcounts import CountCheck, compare, count_tables
from kubemigrate.engine.errors import (
    BackupError,
    InvalidBackup,
    TargetNotEmpty,
    UnsupportedOption,
)
from kubemigrate.engine.pg.libpq import ToolConnection, tool_connection
from kubemigrate.engine.pg.redact import redact
from kubemigrate.engine.pg.session import one_line
from kubemigrate.engine.pg.target import connection_failed

APPLICATION_NAME = "kubemigrate-restore"


@dataclass(frozen=True)
class RestoreResult:
    """A finished restore: the row counts found afterwards and how they compare."""

    path: Path
    format: Format
    database: str
    started_at: datetime
    completed_at: datetime
    duration_seconds: float
    tables: dict[str, int]
    check: CountCheck | None  # None: the backup has no recorded counts to compare with

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def restore_backup(
    path: Path,
    url: str,
    *,
    clean: bool = False,
    no_owner: bool = False,
    pg_restore: str = "pg_restore",
    psql: str = "psql",
) -> RestoreResult:
    """Restore the backup at path into the database at url, and count what arrived.

    Raises InvalidBackup, UnsupportedOption, ConnectionFailed, TargetNotEmpty, ToolFailed; a
    row-count difference is not raised but reported in ``result.check``.
    """
    started_at, t0 = datetime.now(UTC), time.monotonic()
    path = Path(path).absolute()
    fmt, meta = check_backup_file(path)
    if clean and fmt == "plain":
        raise UnsupportedOption(
            "a plain-SQL backup cannot be restored with clean: restore it "
            "into an empty database, or take a custom-format backup"
        )
    program = pgtools.locate(psql if fmt == "plain" else pg_restore)
    connection = tool_connection(url)
    try:
        conn = psycopg.connect(
            url, autocommit=True, application_name=APPLICATION_NAME, connect_timeout=10
        )
    except psycopg.Error as exc:
        raise connection_failed(url, exc) from None
    try:
        with conn:
            database = _current_database(conn)
            if not clean:
                contents = user_objects(conn)
                if not contents.empty:
                    raise TargetNotEmpty(
                        f"database {database} is not empty ({contents.describe()}); restore "
                        "into an empty database, or clean it to replace the backed-up objects"
                    )
            pgtools.run(
                _command(program, fmt, path, connection, clean=clean, no_owner=no_owner),
                env=connection.environ(),
                secrets=connection.secrets,
                what=f"restore into database {database}",
            )
            expected = meta.tables if meta else None
            tables = count_tables(conn, only=expected)
    except psycopg.Error as exc:
        raise BackupError(
            "restore failed: " + redact(one_line(str(exc)), *connection.secrets)
        ) from None
    return RestoreResult(
        path=path,
        format=fmt,
        database=database,
        started_at=started_at,
        completed_at=datetime.now(UTC),
        duration_seconds=time.monotonic() - t0,
        tables=tables,
        check=None if expected is None else compare(expected, tables),
    )


def check_backup_file(path: Path) -> tuple[Format, BackupMeta | None]:
    """The dump's format and sidecar, after checking the dump is the one the sidecar describes."""
    fmt = dumpfile.detect_format(path)
    meta = dumpfile.read_sidecar(path)
    if meta is None:
        return fmt, None
    if meta.format != fmt:
        raise InvalidBackup(f"{path} looks like a {fmt} dump but its sidecar says {meta.format}")
    sha256, size = dumpfile.digest(path)
    if size != meta.size_bytes:
        raise InvalidBackup(
            f"{path} has {size} bytes but was written with {meta.size_bytes}: "
            "truncated or changed since the backup"
        )
    if sha256 != meta.sha256:
        raise InvalidBackup(
            f"{path} does not match its recorded sha256 (corrupted or changed since the backup)"
        )
    return fmt, meta


def _command(
    program: str,
    fmt: Format,
    path: Path,
    connection: ToolConnection,
    *,
    clean: bool,
    no_owner: bool,
) -> list[str]:
    if fmt == "plain":
        return [
            program,
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            "--no-password",
            f"--file={path}",
            f"--dbname={connection.dbname_arg}",
            "--output=/dev/null",
        ]
    args = [
        program,
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        f"--dbname={connection.dbname_arg}",
    ]
    if clean:
        args += ["--clean", "--if-exists"]
    if no_owner:
        args.append("--no-owner")
    return [*args, str(path)]


def _current_database(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    return str(row[0]) if row else ""
