"""The ``kubemigrate`` command: the migration engine for local development, CI and Jobs.

Commands: ``apply``, ``rollback``, ``status``, ``plan``, ``validate``, ``repair``, ``baseline``.
Each takes the migrations directory and a database (``--database-url`` or ``DATABASE_URL``).

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
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import unquote, urlsplit

from kubemigrate import __version__
from kubemigrate.cli import preflight
from kubemigrate.cli.backup import add_backup_commands
from kubemigrate.cli.command import (
    EXIT_CONNECTION,
    EXIT_DRIFT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCK,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    database_url_arg,
    positive_int,
    seconds,
    version,
)
from kubemigrate.cli.output import Output, format_duration, status_table
from kubemigrate.engine import errors
from kubemigrate.engine.errors import ParseError
from kubemigrate.engine.migrate.results import MigrationResult, RunReport, ValidationReport
from kubemigrate.engine.migrate.sources import MigrationSource, SourceError, load_directory

if TYPE_CHECKING:  # the engine loads the database driver: only commands that connect need it
    from kubemigrate.engine.migrate.migrator import Migrator

EPILOG = """\
exit status: 0 success; 1 a migration failed; 2 usage or source error (nothing run);
3 cannot connect; 4 drift, out-of-order or newer history (nothing run); 5 lock wait timed out;
130 interrupted.

The database URL comes from --database-url or DATABASE_URL, e.g.
postgresql://user:password@host:5432/dbname. Passwords are never printed.
"""


# -- arguments ---------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, database: bool = True,
            directory: bool = True) -> None:
    if directory:
        parser.add_argument("directory", metavar="DIR", help="the migrations directory")
    if database:
        database_url_arg(parser)
        parser.add_argument("--history-schema", metavar="SCHEMA", default="kubemigrate",
                            help="schema of the history table (default: %(default)s)")
        parser.add_argument("--lock-wait", metavar="SECONDS", type=seconds, default=30.0,
                            help="how long to wait for another runner's lock "
                                 "(default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show statements, timings and lock waits")


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _apply_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="VERSION", type=version,
                        help="apply up to and including this version")
    parser.add_argument("--dry-run", action="store_true",
                        help="run each migration in a transaction that is rolled back")
    parser.add_argument("--allow-out-of-order", action="store_true",
                        help="apply pending migrations older than the newest applied one")
    _json_flag(parser)


def _rollback_args(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--target", metavar="VERSION", type=version,
                       help="revert every applied version above this one (0: all)")
    which.add_argument("--steps", metavar="N", type=positive_int,
                       help="revert the newest N applied versions")
    parser.add_argument("--dry-run", action="store_true",
                        help="run the rollback SQL in a transaction that is rolled back")
    _json_flag(parser)


def _plan_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="VERSION", type=version,
                        help="plan up to and including this version")
    parser.add_argument("--allow-out-of-order", action="store_true",
                        help="do not count older pending migrations as a problem")
    _json_flag(parser)


def _baseline_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", metavar="VERSION", type=version, required=True,
                        dest="baseline_version",
                        help="record every migration up to this version as applied, unrun")
    parser.add_argument("--description", default="baseline", help="(default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; a new subcommand is one more entry in COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="kubemigrate", description="Safe PostgreSQL schema migrations.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kubemigrate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (*COMMANDS, *preflight.COMMANDS):
        p = sub.add_parser(command.name, help=command.help, description=command.help,
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p, database=command.needs_database, directory=command.takes_directory)
        command.add_arguments(p)
        p.set_defaults(run=command.run, needs_database=command.needs_database)
    add_backup_commands(sub)
    return parser


# -- commands ----------------------------------------------------------------------------------


def _engine(args: argparse.Namespace, out: Output) -> Migrator:
    from kubemigrate.engine.migrate.migrator import Migrator  # noqa: PLC0415

    return Migrator(args.database_url, history_schema=args.history_schema,
                  lock_wait_seconds=args.lock_wait, on_progress=out.detail)


def _sources(args: argparse.Namespace) -> list[MigrationSource]:
    return load_directory(args.directory)


def run_apply(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _engine(args, out) as engine:
        report = engine.apply(sources, target=args.target, dry_run=args.dry_run,
                              allow_out_of_order=args.allow_out_of_order,
                              on_result=_progress(out, args, sources))
    return _finish(report, out, args, verb="Dry-ran" if args.dry_run else "Applied")


def run_rollback(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _engine(args, out) as engine:
        report = engine.rollback(sources, target=args.target, steps=args.steps,
                                 dry_run=args.dry_run, on_result=_progress(out, args, sources))
    return _finish(report, out, args, verb="Dry-ran rollback of" if args.dry_run
                   else "Rolled back")


def run_status(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _engine(args, out) as engine:
        rows = engine.status(sources)
    if args.json:
        out.json([asdict(r) for r in rows])
    else:
        out.say(status_table(rows))
    return EXIT_OK


def run_plan(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _engine(args, out) as engine:
        report = engine.validate(sources, target=args.target,
                                 allow_out_of_order=args.allow_out_of_order)
    if args.json:
        out.json(asdict(report))
    else:
        _say_plan(report, sources, out)
    return _validation_exit(report, out, quiet=True)


def run_validate(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _engine(args, out) as engine:
        report = engine.validate(sources)
    if args.json:
        out.json(asdict(report))
    code = _validation_exit(report, out, quiet=False)
    if code == EXIT_OK and not args.json:
        out.say(f"Validated {len(sources)} migrations: no drift, nothing out of order"
                f" ({len(report.pending)} pending).")
    return code


def run_repair(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _engine(args, out) as engine:
        report = engine.repair(sources)
    for r in report.results:
        out.say(f"Repaired {r.version} ({r.description}): history now records {r.checksum}")
    if not report.results:
        out.say("Nothing to repair.")
    return EXIT_OK


def run_baseline(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _engine(args, out) as engine:
        report = engine.baseline(sources, args.baseline_version, description=args.description)
    out.say(f"Baselined at version {args.baseline_version}: "
            f"{len(report.results)} migrations recorded as applied without running.")
    return EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command("apply", "apply pending migrations, each in its own transaction", _apply_args,
            run_apply),
    Command("rollback", "revert applied migrations with their rollback SQL", _rollback_args,
            run_rollback),
    Command("status", "show every version: applied, pending, failed, drifted",
            _json_flag, run_status),
    Command("plan", "show what apply would do, without running anything", _plan_args, run_plan),
    Command("validate", "check for drift, order and source problems; exit non-zero on any",
            _json_flag, run_validate),
    Command("repair", "accept the current SQL of applied migrations whose files changed",
            lambda p: None, run_repair),
    Command("baseline", "record an existing schema as applied up to a version", _baseline_args,
            run_baseline),
)


# -- output of runs ----------------------------------------------------------------------------


def _progress(out: Output, args: argparse.Namespace,
              sources: Sequence[MigrationSource]) -> Callable[[MigrationResult], None] | None:
    """A line per migration as it finishes; with --verbose, its statements and tables too."""
    if getattr(args, "json", False):
        return None
    by_version = {s.version: s for s in sources}

    def show(result: MigrationResult) -> None:
        out.say(_result_line(result))
        source = by_version.get(result.version)
        if out.verbose and source is not None:
            sql = (source.down_sql or "") if result.kind == "rollback" else source.up_sql
            for line in _statement_lines(sql):
                out.detail(line)
        for label, names in (("created", result.tables_created),
                             ("altered", result.tables_altered),
                             ("dropped", result.tables_dropped)):
            if names:
                out.detail(f"    tables {label}: {', '.join(names)}")

    return show


def _statement_lines(sql: str) -> list[str]:
    from kubemigrate.engine.migrate.statements import split_statements  # noqa: PLC0415 (pglast: slow)

    try:
        statements = split_statements(sql)
    except ParseError as exc:
        return [f"    (does not parse: {exc})"]
    return [f"    {s.index:>3}. line {s.line:<4} {s.command}"
            + (f" {', '.join(s.relations)}" if s.relations else "")
            for s in statements]


def _result_line(r: MigrationResult) -> str:
    state = {"success": "ok", "skipped": "skipped", "failed": "FAILED"}.get(r.status, r.status)
    rows = f"{r.rows_affected} row" + ("" if r.rows_affected == 1 else "s")
    retry = f", {r.attempts} attempts" if r.attempts > 1 else ""
    return (f"  {r.version:<12} {state:<7} {format_duration(r.duration_seconds):>8}  "
            f"{rows:<10} {r.description}{retry}")


def _finish(report: RunReport, out: Output, args: argparse.Namespace, *, verb: str) -> int:
    if args.json:
        out.json(asdict(report))
    failed = report.failed
    if failed is not None:
        out.error(str(errors.MigrationFailed(failed)))
        return EXIT_FAILED
    if not args.json:
        done = len(report.results)
        if done == 0:
            out.say(f"Nothing to do; schema version {report.schema_version or 'none'}.")
        else:
            noun = "migration" if done == 1 else "migrations"
            out.say(f"{verb} {done} {noun} in {format_duration(report.duration_seconds)}, "
                    f"{report.rows_affected} rows; schema version "
                    f"{report.schema_version or 'none'}.")
    return EXIT_OK


def _say_plan(report: ValidationReport, sources: Sequence[MigrationSource], out: Output) -> None:
    by_version = {s.version: s for s in sources}
    out.say(f"Schema version: {report.schema_version or 'none'}")
    if report.pending:
        out.say(f"{len(report.pending)} pending, in the order apply would run them:")
        for v in report.pending:
            source = by_version.get(v)
            mode = "" if source is None or source.transactional else "  (no transaction)"
            out.say(f"  {v:<12} {source.description if source else ''}{mode}")
    else:
        out.say("Nothing to apply.")


def _validation_exit(report: ValidationReport, out: Output, *, quiet: bool) -> int:
    """Report each problem once (on stderr) and pick the exit status of the worst kind."""
    for d in report.drifted:
        out.warn(f"drift: {d.version} was applied with {d.applied_checksum}, "
                 f"its file now has {d.source_checksum}")
    if report.out_of_order:
        out.warn("out of order: pending " + ", ".join(report.out_of_order)
                 + f" older than the newest applied version {report.schema_version}")
    for problem in report.problems:
        out.warn(problem)
    if report.missing and not quiet:
        out.warn("applied but not in the directory: " + ", ".join(report.missing))
    if report.problems:
        out.error(f"{len(report.problems)} problem(s) in the migrations; see above")
        return EXIT_USAGE
    if report.drifted or report.out_of_order:
        out.error("validation failed: "
                  + "; ".join(filter(None, [
                      f"{len(report.drifted)} drifted" if report.drifted else "",
                      f"{len(report.out_of_order)} out of order" if report.out_of_order else "",
                  ])))
        return EXIT_DRIFT
    return EXIT_OK


# -- main --------------------------------------------------------------------------------------


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, SourceError | ParseError | errors.InvalidSources
                  | errors.TransactionForbidden | errors.NoRollbackSql):
        return EXIT_USAGE
    if isinstance(exc, errors.ConnectionFailed):
        return EXIT_CONNECTION
    if isinstance(exc, errors.DriftDetected | errors.OutOfOrder | errors.HistoryTooNew):
        return EXIT_DRIFT
    if isinstance(exc, errors.LockTimeout):
        return EXIT_LOCK
    return EXIT_FAILED


def _password(url: str | None) -> str:
    if not url or "://" not in url:
        return ""
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_database", False):
        args.database_url = args.database_url or os.environ.get("DATABASE_URL")
    url = getattr(args, "database_url", None)
    out = Output(verbose=args.verbose, secrets=[_password(url)])
    if args.needs_database and not url:
        out.error("no database given: pass --database-url or set DATABASE_URL")
        return EXIT_USAGE
    try:
        return int(args.run(args, out))
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except (errors.EngineError, SourceError, ParseError) as exc:
        out.error(str(exc))
        return _exit_code(exc)
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


if __name__ == "__main__":  # pragma: no cover
    console()
