"""``kubemigrate backup``, ``restore``, ``verify-backup`` and ``delete-backup`` at work: the
backup engine on the command line.

They are what the operator's backup and restore Jobs run. Besides the human-readable lines on
stdout and one ``error: ...`` line on stderr, ``--termination-log PATH`` writes the result as
compact JSON (at most 4 KiB) where Kubernetes reads a container's termination message, so the
operator takes results from the pod status, not from logs. Imported only when one of them runs
(cli.subcommands declares their arguments).

Exit status: 0 success; 1 the backup, verification or restore failed (or was refused: the
target is not empty; or restored row counts differ); 2 usage: bad options or URL, nothing run;
3 the database could not be reached or refused the login; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from kubemigrate import jobresult
from kubemigrate.cli import results
from kubemigrate.cli.command import (
    EXIT_CONNECTION,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)
from kubemigrate.cli.output import Output, format_duration, redacted
from kubemigrate.engine import (
    ConnectionFailed,
    EngineError,
    ObjectLocation,
    RestoreResult,
    UnsupportedOption,
    VerifyResult,
    delete_at,
    restore_backup,
    secrets_of,
    take_backup,
    trial_restore,
    verify_backup,
)

Work = Callable[[argparse.Namespace, Output], jobresult.BackupCommandResult]
"""A backup command's own work: its result, as it goes to --json and the termination log."""


# Each writes through its own Output, which also masks the password of --scratch-url (see _run).


def run_backup(args: argparse.Namespace, out: Output) -> int:
    return _run(args, _backup)


def run_restore(args: argparse.Namespace, out: Output) -> int:
    return _run(args, _restore)


def run_verify(args: argparse.Namespace, out: Output) -> int:
    return _run(args, _verify)


def run_delete(args: argparse.Namespace, out: Output) -> int:
    return _run(args, _delete)


# -- running -----------------------------------------------------------------------------------


def _run(args: argparse.Namespace, work: Work) -> int:
    """Run one command: its own Output, redacting both URLs' passwords; every failure becomes
    its result, one error line and an exit status; then --json and the termination log."""
    if hasattr(args, "database_url"):
        args.database_url = args.database_url or os.environ.get("DATABASE_URL")
    secrets = [
        secret
        for u in (getattr(args, "database_url", None), getattr(args, "scratch_url", None))
        if u
        for secret in secrets_of(u)
    ]
    out = Output(verbose=args.verbose, secrets=secrets)
    with _terminate_as_interrupt():
        result, code = _outcome(args, work, out)
    result = redacted(result, out.clean)
    if result["error"]:
        out.error(result["error"])
    if args.json:
        out.json(result)
    if args.termination_log:
        jobresult.write(args.termination_log, result)
    return code


def _outcome(
    args: argparse.Namespace, work: Work, out: Output
) -> tuple[jobresult.BackupCommandResult, int]:
    """work's result and exit status, or a failure's (each error class has its status)."""
    try:
        if hasattr(args, "database_url") and not args.database_url:
            raise _Usage("no database given: pass --database-url or set DATABASE_URL")
        result = work(args, out)
    except KeyboardInterrupt:
        return results.failure("interrupted", "Interrupted"), EXIT_INTERRUPTED
    except (_Usage, UnsupportedOption) as exc:
        reason = getattr(exc, "reason", "InvalidArguments")
        return results.failure(str(exc), reason), EXIT_USAGE
    except ConnectionFailed as exc:  # AuthenticationFailed, or the database is not reachable
        return results.failure(str(exc), exc.reason), EXIT_CONNECTION
    except EngineError as exc:
        reason = getattr(exc, "reason", "BackupFailed")
        return results.failure(str(exc), reason), EXIT_FAILED
    except Exception as exc:  # a bug: still one redacted line
        failure = results.failure(f"internal error: {type(exc).__name__}: {exc}", "InternalError")
        return failure, EXIT_FAILED
    return result, EXIT_OK if result["ok"] else EXIT_FAILED


class _Usage(Exception):
    reason = "InvalidArguments"


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a Job's deadline, a deleted pod) ends the command the way Ctrl-C does, so an
    upload in progress is aborted and temporary files are removed before the grace period."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _backup(args: argparse.Namespace, out: Output) -> jobresult.Backup:
    out.detail(f"backing up to {args.output} ({args.format} format)")
    result = take_backup(
        args.database_url,
        args.output,
        format=args.format,
        pg_dump=args.pg_dump,
        jobs=args.jobs,
        count_rows=_row_counts(args),
        overwrite=args.overwrite,
        compress=args.compress,
    )
    if not args.json:
        out.say(
            f"Backed up database {result.database} (PostgreSQL {result.server_version}) "
            f"to {result.path} in {format_duration(result.duration_seconds)}"
        )
        out.say(f"size: {result.size_bytes} bytes ({_human(result.size_bytes)})")
        out.say(f"sha256: {result.sha256}")
        if result.tables is not None:
            out.say(f"tables: {len(result.tables)}, rows: {result.rows}")
    checked = restored = None
    if args.test_restore and not args.scratch_url:
        args.scratch_url = args.database_url
    if args.verify or args.scratch_url:
        checked, restored = _check(result.path, args, out)
    return results.backup(result, checked, restored)


def _row_counts(args: argparse.Namespace) -> bool:
    """--row-counts if given, else whether the backup is verified (which compares them)."""
    if args.row_counts is not None:
        return bool(args.row_counts)
    return bool(args.verify or args.scratch_url or args.test_restore)


def _restore(args: argparse.Namespace, out: Output) -> jobresult.Restore:
    out.detail(f"restoring {args.file}{' (clean)' if args.clean else ''}")
    result = restore_backup(
        args.file,
        args.database_url,
        clean=args.clean,
        no_owner=args.no_owner,
        pg_restore=args.pg_restore,
        jobs=args.jobs,
    )
    data = results.restore(result)
    if not args.json:
        out.say(
            f"Restored {result.path} into database {result.database} in "
            f"{format_duration(result.duration_seconds)}"
        )
        out.say(f"row counts: {_counts_line(result)}")
    if result.check is not None and not result.check.matched:
        data["error"] = f"restored, but row counts differ: {result.check.summary()}"
    return data


def _delete(args: argparse.Namespace, out: Output) -> jobresult.DeleteBackup:
    """Remove the dump, its sidecar, and the hidden partial files of an interrupted run."""
    where, found = delete_at(args.file, on_removed=lambda victim: out.detail(f"removed {victim}"))
    if not args.json:
        out.say(f"Deleted backup {where}" if found else f"No backup at {where}: nothing to delete")
    return {"ok": True, "location": where, "removed": found, "error": None}


def _verify(args: argparse.Namespace, out: Output) -> jobresult.VerifyBackup:
    checked, restored = _check(args.file, args, out)
    return results.verify(checked, restored)


def _check(
    path: Path | ObjectLocation, args: argparse.Namespace, out: Output
) -> tuple[VerifyResult, RestoreResult | None]:
    """verify_backup, then a test restore when a scratch server is given; say what was found."""
    checked = verify_backup(path, pg_restore=getattr(args, "pg_restore", "pg_restore"))
    restored = None
    if checked.ok and args.scratch_url:
        out.detail("test restore into a scratch database")
        restored = trial_restore(
            path, args.scratch_url, pg_restore=getattr(args, "pg_restore", "pg_restore")
        )
    if not args.json:
        state = "OK" if checked.ok else "FAILED"
        out.say(f"verification {state}: " + "; ".join(checked.checks + checked.problems))
        if restored is not None:
            out.say(f"test restore: {_counts_line(restored)}")
    return checked, restored


def _counts_line(result: RestoreResult) -> str:
    if result.check is None:
        return (
            f"{len(result.tables)} tables, {result.rows} rows restored (the backup "
            "recorded no row counts to compare with)"
        )
    return result.check.summary()


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover
