"""``kubemigrate backup``, ``restore``, ``verify-backup`` and ``delete-backup``: the backup engine
on the command line.

They are what the operator's backup and restore Jobs run. Besides the human-readable lines on
stdout and one ``error: ...`` line on stderr, ``--termination-log PATH`` writes the result as
compact JSON (at most 4 KiB) where Kubernetes reads a container's termination message, so the
operator takes results from the pod status, not from logs.

Exit status: 0 success; 1 the backup, verification or restore failed (or was refused: the
target is not empty; or restored row counts differ); 2 usage: bad options or URL, nothing run;
3 the database could not be reached or refused the login; 130 interrupted.
"""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubemigrate.cli.command import database_url_arg, positive_int
from kubemigrate.cli.output import Output, format_duration

# The backup engine's modules are imported when one of these commands runs, not on every start
# of the CLI: a ``kubemigrate apply`` in a Job or a CI step should not pay for loading them.
if TYPE_CHECKING:
    from kubemigrate.engine.backup.restore import RestoreResult
    from kubemigrate.engine.backup.verify import VerifyResult

FORMATS = ("custom", "plain", "directory")
"""pg_dump's formats, as ``engine.dumpfile.FORMATS`` (a unit test keeps the two the same)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECTION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """\
exit status: 0 success; 1 failed, refused, or row counts differ; 2 usage error (nothing run);
3 cannot connect; 130 interrupted.

The database URL comes from --database-url or DATABASE_URL. Passwords are never printed and
never passed on a command line: pg_dump and pg_restore get them through PGPASSWORD.
"""

Runner = Callable[[argparse.Namespace, Output], dict[str, Any]]


def add_backup_commands(subparsers: Any) -> None:
    """Add backup, restore and verify-backup to the ``kubemigrate`` subcommands.

    Each sets ``run`` (``(args, out) -> exit status``, like the migration commands; ``func`` is the
    same callable) and ``needs_database=False``: they resolve ``$DATABASE_URL`` themselves so
    that even a missing URL is reported in the termination log.
    """
    def parser(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subparsers.add_parser(
            name, help=help, description=help, epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("-v", "--verbose", action="store_true", help="show each step")
        p.add_argument("--termination-log", metavar="PATH", type=Path,
                       help="also write the result as JSON (at most 4 KiB) to PATH")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        return p

    backup = parser("backup", "take a pg_dump backup with its sha256 and row counts")
    database_url_arg(backup)
    backup.add_argument("-o", "--output", metavar="FILE", type=Path, required=True,
                        help="where to write the backup (a directory for --format directory)")
    backup.add_argument("--format", choices=FORMATS, default="custom",
                        help="pg_dump format (default: %(default)s)")
    backup.add_argument("--jobs", metavar="N", type=positive_int,
                        help="parallel pg_dump workers (directory format only)")
    backup.add_argument("--verify", action="store_true",
                        help="check the finished backup (sha256, pg_restore --list)")
    backup.add_argument("--scratch-url", metavar="URL",
                        help="also restore it into a scratch database created on this server "
                             "and compare row counts (implies --verify; needs CREATEDB)")
    backup.add_argument("--test-restore", action="store_true",
                        help="like --scratch-url, on the server of --database-url (what the "
                             "operator's Jobs use: the URL stays in $DATABASE_URL)")
    backup.add_argument("--row-counts", action=argparse.BooleanOptionalAction, default=None,
                        help="count every table's rows in the dump's snapshot and record them "
                             "for restores to compare with (default: when verifying; it costs "
                             "a scan of every table alongside the dump)")
    backup.add_argument("--overwrite", action="store_true",
                        help="replace an existing backup at --output (only once the new one "
                             "is complete)")
    backup.add_argument("--pg-dump", metavar="PROGRAM", default="pg_dump",
                        help="the pg_dump to run (default: pg_dump on PATH)")
    _set(backup, _backup)

    restore = parser("restore", "restore a backup into a database, then compare row counts")
    restore.add_argument("file", metavar="FILE", type=Path, help="the backup to restore")
    database_url_arg(restore)
    restore.add_argument("--clean", action="store_true",
                         help="drop the backed-up objects first; without it a database that "
                              "is not empty is refused")
    restore.add_argument("--no-owner", action="store_true",
                         help="do not restore object ownership (restoring as another role)")
    restore.add_argument("--pg-restore", metavar="PROGRAM", default="pg_restore",
                         help="the pg_restore to run (default: pg_restore on PATH)")
    _set(restore, _restore)

    check = parser("verify-backup", "check a backup: sha256, readability, optionally restore")
    check.add_argument("file", metavar="FILE", type=Path, help="the backup to check")
    check.add_argument("--scratch-url", metavar="URL",
                       help="also restore it into a scratch database created on this server "
                            "and compare row counts (needs CREATEDB)")
    check.add_argument("--pg-restore", metavar="PROGRAM", default="pg_restore",
                       help="the pg_restore to run (default: pg_restore on PATH)")
    _set(check, _verify)

    delete = parser("delete-backup", "delete a backup: the dump, its sidecar and any partial "
                    "files a killed backup left (nothing there is not an error)")
    delete.add_argument("file", metavar="FILE", type=Path, help="the backup to delete")
    _set(delete, _delete)


def _set(parser: argparse.ArgumentParser, runner: Runner) -> None:
    def run(args: argparse.Namespace, out: Output | None = None) -> int:
        return _run(args, runner)

    parser.set_defaults(run=run, func=run, needs_database=False)


# -- running -----------------------------------------------------------------------------------


def _run(args: argparse.Namespace, runner: Runner) -> int:
    """Run one command: its own redacting Output, one error line, the termination log."""
    from kubemigrate.engine.errors import (  # noqa: PLC0415
        ConnectionFailed,
        EngineError,
        UnsupportedOption,
    )
    from kubemigrate.engine.pg.libpq import InvalidUrl, password_of  # noqa: PLC0415
    from kubemigrate.termination import error_json, write_termination_log  # noqa: PLC0415

    if hasattr(args, "database_url"):
        args.database_url = args.database_url or os.environ.get("DATABASE_URL")
    secrets = [password_of(u) for u in (getattr(args, "database_url", None),
                                        getattr(args, "scratch_url", None)) if u]
    out = Output(verbose=args.verbose, secrets=secrets)
    try:
        if hasattr(args, "database_url") and not args.database_url:
            raise _Usage("no database given: pass --database-url or set DATABASE_URL")
        result = runner(args, out)
        code = EXIT_OK if result.get("ok") else EXIT_FAILED
    except KeyboardInterrupt:
        result, code = error_json("interrupted", "Interrupted"), EXIT_INTERRUPTED
    except (_Usage, UnsupportedOption, InvalidUrl) as exc:
        result, code = error_json(str(exc), getattr(exc, "reason", "InvalidArguments")), \
            EXIT_USAGE
    except ConnectionFailed as exc:
        result, code = error_json(str(exc), "ConnectionFailed"), EXIT_CONNECTION
    except EngineError as exc:
        result, code = error_json(str(exc), getattr(exc, "reason", "BackupFailed")), EXIT_FAILED
    except Exception as exc:  # a bug: still one redacted line
        result = error_json(f"internal error: {type(exc).__name__}: {exc}", "InternalError")
        code = EXIT_FAILED
    result = _redacted(result, out)
    if result.get("error"):
        out.error(str(result["error"]))
    if args.json:
        out.json(result)
    if args.termination_log:
        write_termination_log(args.termination_log, result)
    return code


class _Usage(Exception):
    reason = "InvalidArguments"


def _redacted(value: Any, out: Output) -> Any:
    if isinstance(value, str):
        return out.clean(value)
    if isinstance(value, dict):
        return {k: _redacted(v, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, out) for v in value]
    return value


def _backup(args: argparse.Namespace, out: Output) -> dict[str, Any]:
    from kubemigrate.engine.backup.dump import take_backup  # noqa: PLC0415
    from kubemigrate.termination import backup_json  # noqa: PLC0415

    out.detail(f"backing up to {args.output} ({args.format} format)")
    result = take_backup(args.database_url, args.output, format=args.format,
                         pg_dump=args.pg_dump, jobs=args.jobs,
                         count_rows=_row_counts(args), overwrite=args.overwrite)
    if not args.json:
        out.say(f"Backed up database {result.database} (PostgreSQL {result.server_version}) "
                f"to {result.path} in {format_duration(result.duration_seconds)}")
        out.say(f"size: {result.size_bytes} bytes ({_human(result.size_bytes)})")
        out.say(f"sha256: {result.sha256}")
        if result.tables is not None:
            out.say(f"tables: {len(result.tables)}, rows: {result.rows}")
    checked = restored = None
    if args.test_restore and not args.scratch_url:
        args.scratch_url = args.database_url
    if args.verify or args.scratch_url:
        checked, restored = _check(result.path, args, out)
    return backup_json(result, checked, restored)


def _row_counts(args: argparse.Namespace) -> bool:
    """--row-counts if given, else whether the backup is verified (which compares them)."""
    if args.row_counts is not None:
        return bool(args.row_counts)
    return bool(args.verify or args.scratch_url or args.test_restore)


def _restore(args: argparse.Namespace, out: Output) -> dict[str, Any]:
    from kubemigrate.engine.backup.restore import restore_backup  # noqa: PLC0415
    from kubemigrate.termination import restore_json  # noqa: PLC0415

    out.detail(f"restoring {args.file}{' (clean)' if args.clean else ''}")
    result = restore_backup(args.file, args.database_url, clean=args.clean,
                            no_owner=args.no_owner, pg_restore=args.pg_restore)
    data = restore_json(result)
    if not args.json:
        out.say(f"Restored {result.path} into database {result.database} in "
                f"{format_duration(result.duration_seconds)}")
        out.say(f"row counts: {_counts_line(result)}")
    if result.check is not None and not result.check.matched:
        data["error"] = f"restored, but row counts differ: {result.check.summary()}"
    return data


def _delete(args: argparse.Namespace, out: Output) -> dict[str, Any]:
    """Remove the dump, its sidecar, and the hidden partial files of an interrupted run."""
    from kubemigrate.engine.backup import dumpfile  # noqa: PLC0415

    path = Path(args.file).absolute()
    sidecar = dumpfile.sidecar_path(path)
    found = [p for p in (path, sidecar) if p.exists() or p.is_symlink()]
    if path.parent.is_dir():
        found += sorted(path.parent.glob(f".{glob.escape(path.name)}*.partial-*"))
    for victim in found:
        dumpfile.remove(victim)
        out.detail(f"removed {victim}")
    if not args.json:
        out.say(f"Deleted backup {path}" if found else f"No backup at {path}: nothing to delete")
    return {"ok": True, "location": str(path), "removed": [p.name for p in found],
            "error": None}


def _verify(args: argparse.Namespace, out: Output) -> dict[str, Any]:
    from kubemigrate.termination import verify_json  # noqa: PLC0415

    checked, restored = _check(args.file, args, out)
    return verify_json(checked, restored)


def _check(path: Path, args: argparse.Namespace,
           out: Output) -> tuple[VerifyResult, RestoreResult | None]:
    """verify_backup, then a test restore when a scratch server is given; say what was found."""
    from kubemigrate.engine.backup import verify  # noqa: PLC0415

    checked = verify.verify_backup(path, pg_restore=getattr(args, "pg_restore", "pg_restore"))
    restored = None
    if checked.ok and args.scratch_url:
        out.detail("test restore into a scratch database")
        restored = verify.trial_restore(path, args.scratch_url,
                                       pg_restore=getattr(args, "pg_restore", "pg_restore"))
    if not args.json:
        state = "OK" if checked.ok else "FAILED"
        out.say(f"verification {state}: " + "; ".join(checked.checks + checked.problems))
        if restored is not None:
            out.say(f"test restore: {_counts_line(restored)}")
    return checked, restored


def _counts_line(result: RestoreResult) -> str:
    if result.check is None:
        return (f"{len(result.tables)} tables, {result.rows} rows restored (the backup "
                "recorded no row counts to compare with)")
    return result.check.summary()


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover
