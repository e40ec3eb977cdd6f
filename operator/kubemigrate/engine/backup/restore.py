"""Restoring a backup: all or nothing, never on top of live data by accident, then proven.

The dump is checked against its sidecar (sha256, size) before the target is touched; a target
that is not empty (see ``target``) is refused unless ``clean`` is asked for, which drops the
dump's objects first (``--clean --if-exists``). pg_restore runs with ``--single-transaction``
(psql likewise for plain dumps), so a failed restore leaves the target as it was (unless
``jobs`` is asked for: see below). Afterwards every
table recorded in the sidecar is counted and compared.

``jobs`` (``pg_restore -j N``, custom files and directory dumps) trades that guarantee for
speed: pg_restore cannot run parallel workers inside one transaction, so a failed parallel
restore leaves the target partly restored. It is refused with ``clean`` (which would have
dropped live objects first); the target is otherwise empty, so recreating it is the way back.

An ``s3://`` backup is read from object storage (``objrestore``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from kubemigrate.engine.backup import dumpfile, objrestore, objstore, pgtools
from kubemigrate.engine.backup.contents import user_objects
from kubemigrate.engine.backup.dumpfile import BackupMeta, Format
from kubemigrate.engine.backup.objstore import ObjectLocation
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

    path: Path | ObjectLocation
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


def location(path: Path | str | ObjectLocation) -> Path | ObjectLocation:
    """An ObjectLocation for ``s3://...``, else the absolute local path."""
    if isinstance(path, ObjectLocation):
        return path
    if objstore.is_remote(path):
        return objstore.parse(str(path))
    return Path(path).absolute()


def checked(where: Path | ObjectLocation) -> tuple[Format, BackupMeta | None]:
    """check_backup_file, or for an object its size against its (required) sidecar."""
    if isinstance(where, ObjectLocation):
        return objrestore.check(where)
    return check_backup_file(where)


@dataclass(frozen=True)
class _Run:
    """One restore's checked inputs."""

    where: Path | ObjectLocation
    fmt: Format
    meta: BackupMeta | None
    program: str
    connection: ToolConnection
    clean: bool
    no_owner: bool
    jobs: int | None


def restore_backup(
    path: Path | str | ObjectLocation,
    url: str,
    *,
    clean: bool = False,
    no_owner: bool = False,
    pg_restore: str = "pg_restore",
    psql: str = "psql",
    jobs: int | None = None,
) -> RestoreResult:
    """Restore the backup at path (a file, directory or ``s3://`` object) into the database at
    url, and count what arrived.

    Raises InvalidBackup, UnsupportedOption, ConnectionFailed, TargetNotEmpty, ToolFailed; a
    row-count difference is not raised but reported in ``result.check``.
    """
    started_at, t0 = datetime.now(UTC), time.monotonic()
    where = location(path)
    fmt, meta = checked(where)
    _check_options(where, fmt, clean, jobs)
    run = _Run(
        where,
        fmt,
        meta,
        pgtools.locate(psql if fmt == "plain" else pg_restore),
        tool_connection(url),
        clean,
        no_owner,
        jobs if jobs and jobs > 1 else None,
    )
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
            _restore(run, f"restore into database {database}")
            expected = meta.tables if meta else None
            tables = count_tables(conn, only=expected)
    except psycopg.Error as exc:
        raise BackupError(
            "restore failed: " + redact(one_line(str(exc)), *run.connection.secrets)
        ) from None
    return RestoreResult(
        path=where,
        format=fmt,
        database=database,
        started_at=started_at,
        completed_at=datetime.now(UTC),
        duration_seconds=time.monotonic() - t0,
        tables=tables,
        check=None if expected is None else compare(expected, tables),
    )


def _check_options(
    where: Path | ObjectLocation, fmt: Format, clean: bool, jobs: int | None
) -> None:
    if clean and fmt == "plain":
        raise UnsupportedOption(
            "a plain-SQL backup cannot be restored with clean: restore it "
            "into an empty database, or take a custom-format backup"
        )
    if not jobs or jobs <= 1:
        return
    if clean:
        raise UnsupportedOption(
            "a parallel restore (jobs > 1) is not one transaction, so it cannot be combined "
            "with clean: restore into an empty database"
        )
    if fmt == "plain" or (isinstance(where, ObjectLocation) and fmt != "directory"):
        raise UnsupportedOption(
            "a parallel restore (jobs > 1) needs a directory backup, or a custom-format file "
            "on local disk"
        )


def _restore(run: _Run, what: str) -> None:
    """Run pg_restore or psql: on the local file, streamed from the object, or on a directory
    dump unpacked from its object."""
    env, secrets = run.connection.environ(), run.connection.secrets
    if isinstance(run.where, Path):
        pgtools.run(_command(run, str(run.where)), env=env, secrets=secrets, what=what)
        return
    assert run.meta is not None  # a remote backup always has its sidecar (objrestore.check)
    if run.fmt != "directory":
        objrestore.feed(
            run.where, run.meta, _command(run, None), env=env, secrets=secrets, what=what
        )
        return
    with tempfile.TemporaryDirectory(prefix="kubemigrate-restore-") as staging:
        objrestore.fetch_directory(run.where, run.meta, Path(staging))
        pgtools.run(_command(run, staging), env=env, secrets=secrets, what=what)


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


def _command(run: _Run, source: str | None) -> list[str]:
    """The restore's command line; source None: the dump comes on standard input."""
    dbname = f"--dbname={run.connection.dbname_arg}"
    if run.fmt == "plain":
        return [
            run.program,
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            "--no-password",
            f"--file={source or '-'}",
            dbname,
            "--output=/dev/null",
        ]
    args = [run.program, "--exit-on-error", "--no-password", dbname]
    args.append(f"--jobs={run.jobs}" if run.jobs else "--single-transaction")
    if run.clean:
        args += ["--clean", "--if-exists"]
    if run.no_owner:
        args.append("--no-owner")
    return [*args, *([source] if source else [])]


def _current_database(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    return str(row[0]) if row else ""
