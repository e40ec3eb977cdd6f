"""Checking a backup without trusting it: readable, complete, unchanged, and restorable.

``verify_backup`` is cheap and always safe: the sidecar's sha256 and size (catches truncation and
bit rot since the backup), then ``pg_restore --list`` (the archive's table of contents parses),
or for plain SQL pg_dump's closing line. Without a sidecar nothing proves the data section is
whole, so the whole archive is read and decompressed (``pg_restore --file=/dev/null``).

``trial_restore`` is the real proof: restore into a scratch database created for it (the URL's
role needs CREATEDB), compare every table's row count with the sidecar's, drop the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

from kubemigrate.engine.backup import objrestore, pgtools
from kubemigrate.engine.backup.dumpfile import BackupMeta, Format, plain_is_complete
from kubemigrate.engine.backup.objstore import ObjectLocation
from kubemigrate.engine.backup.restore import (
    RestoreResult,
    check_backup_file,
    location,
    restore_backup,
)
from kubemigrate.engine.errors import BackupError, InvalidBackup, ToolFailed
from kubemigrate.engine.pg.libpq import parse
from kubemigrate.engine.pg.target import connection_failed

SCRATCH_PREFIX = "kubemigrate_verify_"


@dataclass(frozen=True)
class VerifyResult:
    """What was checked, and what was wrong (nothing, when ``ok``)."""

    path: Path | ObjectLocation
    format: Format | None
    checks: tuple[str, ...]
    problems: tuple[str, ...]
    entries: int | None = None  # table-of-contents entries, for custom and directory dumps
    meta: BackupMeta | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_backup(
    path: Path | str | ObjectLocation, *, pg_restore: str = "pg_restore"
) -> VerifyResult:
    """Check the backup at path; problems are returned, not raised (ToolMissing is raised)."""
    where = location(path)
    if isinstance(where, ObjectLocation):
        return _verify_object(where, pg_restore)
    path = where
    checks: list[str] = []
    try:
        fmt, meta = check_backup_file(path)
    except InvalidBackup as exc:
        return VerifyResult(path, None, (), (str(exc),))
    if meta is not None:
        checks.append("sha256 and size match the sidecar")
    if fmt == "plain":
        if not plain_is_complete(path):
            return VerifyResult(
                path,
                fmt,
                tuple(checks),
                (
                    f"{path} is not a complete pg_dump SQL script (no header or no closing "
                    "'dump complete' line): truncated?",
                ),
                meta=meta,
            )
        return VerifyResult(path, fmt, (*checks, "plain SQL script is complete"), (), meta=meta)
    program = pgtools.locate(pg_restore)
    try:
        listing = pgtools.run([program, "--list", str(path)], what="pg_restore --list")
        entries = sum(
            1 for line in listing.stdout.splitlines() if line.strip() and not line.startswith(";")
        )
        checks.append(f"pg_restore --list reads {entries} entries")
        if meta is None:
            pgtools.run([program, "--file=/dev/null", str(path)], what="reading the whole archive")
            checks.append("every data block reads and decompresses")
    except ToolFailed as exc:
        return VerifyResult(path, fmt, tuple(checks), (str(exc),), meta=meta)
    return VerifyResult(path, fmt, tuple(checks), (), entries=entries, meta=meta)


def _verify_object(where: ObjectLocation, pg_restore: str) -> VerifyResult:
    """An object's check: size against the sidecar, then the whole object read once for its
    sha256 while pg_restore --list reads the archive (or the plain script's ends are seen)."""
    try:
        fmt, meta = objrestore.check(where)
        entries, complete = objrestore.scan(where, meta, pg_restore)
    except (InvalidBackup, ToolFailed) as exc:
        return VerifyResult(where, None, (), (str(exc),))
    checks = ["size and sha256 match the sidecar"]
    if not complete:
        problem = (
            f"{where} is not a complete pg_dump SQL script (no header or no closing "
            "'dump complete' line): truncated?"
        )
        return VerifyResult(where, fmt, tuple(checks), (problem,), meta=meta)
    if entries is None:
        checks.append("plain SQL script is complete")
    else:
        checks.append(f"pg_restore --list reads {entries} entries")
    return VerifyResult(where, fmt, tuple(checks), (), entries=entries, meta=meta)


def trial_restore(
    path: Path | str | ObjectLocation,
    scratch_url: str,
    *,
    pg_restore: str = "pg_restore",
    psql: str = "psql",
) -> RestoreResult:
    """Restore into a new database on scratch_url's server, count, compare, drop it.

    ``result.check`` is None when the backup has no recorded row counts.
    """
    name = SCRATCH_PREFIX + uuid.uuid4().hex[:12]
    try:
        admin = psycopg.connect(
            scratch_url, autocommit=True, connect_timeout=10, application_name="kubemigrate-verify"
        )
    except psycopg.Error as exc:
        raise connection_failed(scratch_url, exc) from None
    with admin:
        try:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
        except psycopg.Error as exc:
            raise BackupError(
                f"cannot create a scratch database for the test restore: "
                f"{exc.diag.message_primary or exc}"
            ) from None
        try:
            return restore_backup(
                path, _with_database(scratch_url, name), pg_restore=pg_restore, psql=psql
            )
        finally:
            force = " WITH (FORCE)" if admin.info.server_version >= 130000 else ""
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name))
            )


def _with_database(url: str, dbname: str) -> str:
    """url as a conninfo string naming another database (password kept, never printed)."""
    params = parse(url)
    params["dbname"] = dbname
    return conninfo.make_conninfo(**params)
