"""Taking a backup: pg_dump in an exported snapshot, with exact row counts from that snapshot.

The connection that exports the snapshot (REPEATABLE READ, read only) counts every table's rows
while pg_dump, started with ``--snapshot``, dumps the same snapshot in its own process: the
counts are exactly the rows in the dump, at the cost of one extra scan running alongside the
dump. The sidecar keeps them, so a restore anywhere, later, can prove it loaded every row.

pg_dump writes to a temporary file (``-f``, not a pipe: a seekable custom archive gets data
offsets in its table of contents, which parallel and selective restores need); the file is then
hashed once, from the page cache, and renamed into place with its sidecar. pg_dump dies with
this process (``pgtools``), and the temporary files a killed run leaves are removed by the next
backup of the same target (``dumpfile.clear_stale``).

An ``s3://bucket/key`` output streams the dump into object storage instead (``objdump``).
``compress`` is pg_dump's ``--compress``: a gzip level (``0``-``9``), or with pg_dump 16 and
newer ``gzip:N``, ``lz4[:N]``, ``zstd[:N]`` or ``none``.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from kubemigrate.engine.backup import dumpfile, objdump, objstore, pgtools
from kubemigrate.engine.backup.dumpfile import BackupMeta, Format
from kubemigrate.engine.backup.objstore import ObjectLocation
from kubemigrate.engine.backup.rowcounts import count_tables
from kubemigrate.engine.errors import BackupError, ToolFailed, ToolTooOld, UnsupportedOption
from kubemigrate.engine.pg.libpq import ToolConnection, tool_connection
from kubemigrate.engine.pg.redact import redact
from kubemigrate.engine.pg.session import one_line
from kubemigrate.engine.pg.target import connection_failed

APPLICATION_NAME = "kubemigrate-backup"


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: where, how big, its sha256, and what it holds."""

    path: Path | ObjectLocation
    format: Format
    size_bytes: int
    sha256: str
    database: str
    server_version: str
    started_at: datetime
    completed_at: datetime
    duration_seconds: float
    tables: dict[str, int] | None

    @property
    def rows(self) -> int | None:
        return None if self.tables is None else sum(self.tables.values())


@dataclass(frozen=True)
class _Plan:
    """What to run: the checked options of one take_backup call."""

    program: str
    dump_major: int
    connection: ToolConnection
    output: Path | ObjectLocation
    format: Format
    jobs: int | None
    count_rows: bool
    overwrite: bool
    compress: str | None = None


def take_backup(
    url: str,
    output: Path | str | ObjectLocation,
    *,
    format: Format = "custom",
    pg_dump: str = "pg_dump",
    jobs: int | None = None,
    count_rows: bool = True,
    overwrite: bool = False,
    compress: str | None = None,
) -> BackupResult:
    """Dump the database at url into output (a file, or a directory for ``directory``; or an
    ``s3://`` object).

    Raises ConnectionFailed, ToolMissing, ToolTooOld, ToolFailed or BackupError; on any failure
    nothing is left at output (an existing backup there is only replaced on success).
    """
    started_at, t0 = datetime.now(UTC), time.monotonic()
    checked = _check_output(output, format, jobs, overwrite)
    program = pgtools.locate(pg_dump)
    major = pgtools.major_version(program)
    plan = _Plan(
        program,
        major,
        tool_connection(url),
        checked,
        format,
        jobs,
        count_rows,
        overwrite,
        compress_flag(compress, major),
    )
    try:
        conn = psycopg.connect(
            url, autocommit=True, application_name=APPLICATION_NAME, connect_timeout=10
        )
    except psycopg.Error as exc:
        raise connection_failed(url, exc) from None
    try:
        with conn:
            meta = _backup(conn, plan, t0)
    except psycopg.Error as exc:
        message = redact(one_line(str(exc)), *plan.connection.secrets)
        raise BackupError(f"backup failed: {message}") from None
    return BackupResult(
        path=plan.output,
        format=format,
        size_bytes=meta.size_bytes,
        sha256=meta.sha256,
        database=meta.database,
        server_version=meta.server_version,
        started_at=started_at,
        completed_at=meta.created_at,
        duration_seconds=meta.duration_seconds,
        tables=meta.tables,
    )


def _backup(conn: psycopg.Connection[Any], plan: _Plan, t0: float) -> BackupMeta:
    """Export a snapshot, dump and count in it, then publish the dump with its sidecar."""
    server_version = _server_version(conn)
    server_major = pgtools.server_major(conn.info.server_version)
    if plan.dump_major < server_major:
        raise ToolTooOld(
            f"{plan.program} is version {plan.dump_major}, older than the server "
            f"(PostgreSQL {server_version}): use pg_dump {server_major} or newer"
        )
    database = str(_scalar(conn, "SELECT current_database()"))
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    snapshot = str(_scalar(conn, "SELECT pg_export_snapshot()"))
    args = _pg_dump_args(plan, snapshot)
    facts = _Facts(database, server_version, t0)
    if isinstance(plan.output, ObjectLocation):
        return _backup_to_object(conn, plan, args, plan.output, facts)
    return _backup_to_file(conn, plan, args, plan.output, facts)


@dataclass(frozen=True)
class _Facts:
    """What the sidecar records besides the dump's own digest."""

    database: str
    server_version: str
    t0: float

    def meta(
        self, plan: _Plan, sha256: str, size: int, tables: dict[str, int] | None
    ) -> BackupMeta:
        return BackupMeta(
            format=plan.format,
            sha256=sha256,
            size_bytes=size,
            database=self.database,
            server_version=self.server_version,
            pg_dump_version=plan.dump_major,
            created_at=datetime.now(UTC),
            duration_seconds=round(time.monotonic() - self.t0, 3),
            tables=tables,
        )


def _pg_dump_args(plan: _Plan, snapshot: str) -> list[str]:
    args = [
        plan.program,
        f"--format={dumpfile.PG_DUMP_FLAG[plan.format]}",
        f"--snapshot={snapshot}",
        "--no-password",
        f"--dbname={plan.connection.dbname_arg}",
    ]
    if plan.jobs:
        args.append(f"--jobs={plan.jobs}")
    if plan.compress is not None:
        args.append(f"--compress={plan.compress}")
    return args


def _backup_to_file(
    conn: psycopg.Connection[Any], plan: _Plan, args: list[str], output: Path, facts: _Facts
) -> BackupMeta:
    dumpfile.clear_stale(output)  # what a run killed outright left (see dumpfile)
    temp = dumpfile.temporary_name(output)
    with (
        dumpfile.removing_on_failure(temp),
        dumpfile.claimed(temp, directory=plan.format == "directory"),
    ):
        tables = _dump_and_count(conn, [*args, f"--file={temp}"], plan)
        conn.execute("ROLLBACK")
        sha256, size = dumpfile.digest(temp)
        meta = facts.meta(plan, sha256, size, tables)
        if plan.overwrite:
            dumpfile.remove(output)
            dumpfile.remove(dumpfile.sidecar_path(output))
        dumpfile.publish(temp, output, meta)
    return meta


def _backup_to_object(
    conn: psycopg.Connection[Any],
    plan: _Plan,
    args: list[str],
    where: ObjectLocation,
    facts: _Facts,
) -> BackupMeta:
    """Stream the dump into where (a directory dump is staged locally, then sent as a tar),
    then write the sidecar beside it."""
    if plan.format == "directory":
        with tempfile.TemporaryDirectory(prefix="kubemigrate-dump-") as staging:
            local = Path(staging) / "dump"
            tables = _dump_and_count(conn, [*args, f"--file={local}"], plan)
            conn.execute("ROLLBACK")
            done = objdump.upload_directory(where, local)
    else:
        done, tables = objdump.stream_dump(
            args,
            env=plan.connection.environ(),
            secrets=plan.connection.secrets,
            where=where,
            count=lambda: count_tables(conn, background=True) if plan.count_rows else None,
            cancel=conn.cancel_safe,
        )
        conn.execute("ROLLBACK")
    meta = facts.meta(plan, done.sha256, done.size_bytes, tables)
    store = objstore.open_store(where.bucket)
    try:
        objstore.write_text(store, where, where.sidecar_key, meta.to_json())
    except BaseException:
        objstore.delete(store, where, [where.key])
        raise
    return meta


def _dump_and_count(
    conn: psycopg.Connection[Any], args: list[str], plan: _Plan
) -> dict[str, int] | None:
    """Run pg_dump; meanwhile count rows on conn, whose open transaction holds the snapshot."""
    with tempfile.TemporaryFile("w+") as stderr:
        proc = pgtools.popen(
            args,
            env=plan.connection.environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            tables = count_tables(conn, background=True) if plan.count_rows else None
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if returncode != 0:
            stderr.seek(0)
            raise ToolFailed(
                "pg_dump failed: "
                + pgtools.error_line(stderr.read(), "pg_dump", secrets=plan.connection.secrets)
            )
    return tables


def _check_output(
    output: Path | str | ObjectLocation, format: Format, jobs: int | None, overwrite: bool
) -> Path | ObjectLocation:
    if format not in dumpfile.FORMATS:
        raise UnsupportedOption(f"unknown backup format {format!r}: use custom, plain or directory")
    if jobs is not None and jobs > 1 and format != "directory":
        raise UnsupportedOption("parallel dumps (jobs > 1) need the directory format")
    if objstore.is_remote(output):
        where = output if isinstance(output, ObjectLocation) else objstore.parse(str(output))
        objdump.check_free(where, overwrite)
        return where
    assert not isinstance(output, ObjectLocation)
    output = Path(output).absolute()
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise BackupError(f"{output} already exists; choose another name or overwrite it")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create directory {output.parent}: {exc.strerror}") from None
    return output


_COMPRESS = re.compile(
    r"^(?:(?P<level>[0-9])|(?P<method>none|gzip|lz4|zstd)(?::(?P<detail>[0-9]{1,2}))?)$"
)


def compress_flag(spec: str | None, dump_major: int) -> str | None:
    """pg_dump's ``--compress`` value for spec, or UnsupportedOption if this pg_dump lacks it.

    A bare level is gzip's (every version); ``method[:level]`` needs pg_dump 16, except
    ``gzip:N`` and ``none``, which older ones get as ``N`` and ``0``.
    """
    if spec is None or spec == "":
        return None
    match = _COMPRESS.match(spec)
    if match is None:
        raise UnsupportedOption(
            f"unknown compression {spec!r}: use a gzip level 0-9, or gzip:N, lz4[:N], "
            "zstd[:N] or none (pg_dump 16+)"
        )
    if match["level"] is not None or dump_major >= 16:
        return spec
    method, detail = match["method"], match["detail"]
    if method == "none":
        return "0"
    if method == "gzip":
        return detail or "6"
    raise UnsupportedOption(
        f"{method} compression needs pg_dump 16 or newer (this one is {dump_major}): "
        "use a gzip level"
    )


def _server_version(conn: psycopg.Connection[Any]) -> str:
    """``15.18`` from ``15.18 (Debian 15.18-0+deb12u1)``."""
    full = conn.info.parameter_status("server_version") or ""
    return full.split(" ", 1)[0] or str(conn.info.server_version)


def _scalar(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]
