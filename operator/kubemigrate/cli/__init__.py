"""The ``kubemigrate`` command: the migration engine for local development, CI and Jobs.

Commands: ``apply``, ``rollback``, ``status``, ``plan``, ``validate``, ``repair``, ``baseline``.
Each takes the migrations directory and a database (``--database-url`` or ``DATABASE_URL``).
The operator's Jobs run ``preflight`` and the backup commands (``backup``, ``restore``,
``verify-backup``, ``delete-backup``; see cli.backup for their exit statuses).

Exit status:

    0  success (for validate: no problem found)
    1  a migration failed while running (the database is left as it was before that migration)
    2  usage or source error: bad arguments, unreadable migrations directory, SQL that does not
       parse, a statement refused in a transaction, no rollback SQL; nothing was run
    3  the database could not be reached or refused the login
    4  drift: an applied migration's SQL changed, pending migrations out of order, or a history
       written by a newer kubemigrate; nothing was run
    5  another runner held the migration lock past --lock-wait; nothing was run
  130  interrupted

Errors are one line on stderr, ``error: ...``, with SQLSTATE, statement number and line for SQL
errors. No password is ever printed: everything goes through ``engine.redact``.

The package: ``command`` (what a subcommand is, exit statuses), ``subcommands`` (every one's
arguments), ``output`` (tables, JSON, redaction); and the code each subcommand runs, imported
only when it runs: ``migrate``, ``migrate_set``, ``preflight``, ``backup``, ``fleet_worker``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from kubemigrate import __version__, engine
from kubemigrate.cli.command import (
    EXIT_CONNECTION,
    EXIT_DRIFT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCK,
    EXIT_USAGE,
    Command,
)
from kubemigrate.cli.output import Output
from kubemigrate.cli.subcommands import MIGRATE_EPILOG, SUBCOMMANDS
from kubemigrate.engine import (
    ConnectionFailed,
    DriftDetected,
    EngineError,
    HistoryTooNew,
    InvalidSources,
    LockTimeout,
    NoRollbackSql,
    OutOfOrder,
    ParseError,
    TransactionForbidden,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, from cli.subcommands (which imports no subcommand's code)."""
    parser = argparse.ArgumentParser(
        prog="kubemigrate",
        description="Safe PostgreSQL schema migrations.",
        epilog=MIGRATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kubemigrate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in SUBCOMMANDS:
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            epilog=command.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.arguments(p)
        p.set_defaults(declared=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    command: Command = args.declared
    if command.needs_database:
        args.database_url = args.database_url or os.environ.get("DATABASE_URL")
    url = getattr(args, "database_url", None)
    # The whole value too: whatever it holds (a token, if a Secret's wrong key was given), no
    # line the command prints quotes it.
    out = Output(verbose=args.verbose, secrets=[_password(url), url or ""])
    if command.needs_database and not url:
        out.error("no database given: pass --database-url or set DATABASE_URL")
        return EXIT_USAGE
    try:
        return int(command.load()(args, out))
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    # engine.SourceError loads the sources module; an except clause is evaluated only on failure.
    except (EngineError, engine.SourceError, ParseError) as exc:
        out.error(str(exc))
        return _exit_status(exc)
    except Exception as exc:  # a bug: still one redacted line, the traceback with --verbose
        out.detail("".join(traceback.format_exception(exc)))
        out.error(f"internal error: {type(exc).__name__}: {exc}")
        return EXIT_FAILED


def console() -> NoReturn:
    """The ``kubemigrate`` command: main, then exit. The interpreter's last garbage collection
    would walk every object the run made (a parse tree per migration: some 30 ms for 1,000),
    only to free memory the process is about to give back; frozen objects are skipped."""
    status = main()
    gc.freeze()
    sys.exit(status)


def _exit_status(exc: BaseException) -> int:
    usage = engine.SourceError | ParseError | InvalidSources | TransactionForbidden | NoRollbackSql
    if isinstance(exc, usage):
        return EXIT_USAGE
    if isinstance(exc, ConnectionFailed):
        return EXIT_CONNECTION
    if isinstance(exc, DriftDetected | OutOfOrder | HistoryTooNew):
        return EXIT_DRIFT
    if isinstance(exc, LockTimeout):
        return EXIT_LOCK
    return EXIT_FAILED


def _password(url: str | None) -> str:
    if not url or "://" not in url:
        return ""
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""
