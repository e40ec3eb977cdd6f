"""The migration commands at work: apply, rollback, status, plan, validate, repair, baseline.

Imported only when one of them runs (cli.subcommands declares their arguments). Each is a
``Runner``; the errors it raises are reported, and mapped to exit statuses, by ``cli.main``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import asdict

from kubemigrate import engine
from kubemigrate.cli.batchbar import BatchReporter
from kubemigrate.cli.command import EXIT_DRIFT, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from kubemigrate.cli.output import Output, format_duration, status_table
from kubemigrate.engine import (
    MigrationFailed,
    MigrationResult,
    MigrationSource,
    Migrator,
    ParseError,
    RunReport,
    ValidationReport,
    load_directory,
    version_key,
)


def _migrator(
    args: argparse.Namespace, out: Output, on_batch: BatchReporter | None = None
) -> Migrator:
    return Migrator(
        args.database_url,
        history_schema=args.history_schema,
        lock_wait_seconds=args.lock_wait,
        on_progress=out.detail,
        on_batch=on_batch,
    )


def _sources(args: argparse.Namespace) -> list[MigrationSource]:
    return load_directory(args.directory)


def run_apply(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    bar = BatchReporter(out, as_json=args.json)
    try:
        with _migrator(args, out, bar) as migrator:
            report = migrator.apply(
                sources,
                target=args.target,
                dry_run=args.dry_run,
                allow_out_of_order=args.allow_out_of_order,
                on_result=_progress(out, args, sources),
            )
    finally:
        bar.close()
    return _finish(report, out, args, verb="Dry-ran" if args.dry_run else "Applied")


def run_rollback(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    bar = BatchReporter(out, as_json=args.json)
    try:
        with _migrator(args, out, bar) as migrator:
            report = migrator.rollback(
                sources,
                target=args.target,
                steps=args.steps,
                dry_run=args.dry_run,
                on_result=_progress(out, args, sources),
            )
    finally:
        bar.close()
    return _finish(report, out, args, verb="Dry-ran rollback of" if args.dry_run else "Rolled back")


def run_status(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _migrator(args, out) as migrator:
        rows = migrator.status(sources)
    if args.json:
        out.json([asdict(r) for r in rows])
    else:
        out.say(status_table(rows))
        for r in rows:
            if r.resume:
                out.say(f"{r.version}: {r.resume}")
    return EXIT_OK


def run_plan(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _migrator(args, out) as migrator:
        report = migrator.validate(
            sources, target=args.target, allow_out_of_order=args.allow_out_of_order
        )
    if args.json:
        out.json(asdict(report))
    else:
        _say_plan(report, sources, out)
    return _validation_exit(report, out, quiet=True)


def run_validate(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _migrator(args, out) as migrator:
        report = migrator.validate(sources)
    if args.json:
        out.json(asdict(report))
    code = _validation_exit(report, out, quiet=False)
    if code == EXIT_OK and not args.json:
        out.say(
            f"Validated {len(sources)} migrations: no drift, nothing out of order"
            f" ({len(report.pending)} pending)."
        )
    return code


def run_repair(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _migrator(args, out) as migrator:
        report = migrator.repair(sources, completed=args.completed)
    completed = {version_key(v) for v in args.completed}
    for r in report.results:
        out.say(_repair_line(r, version_key(r.version) in completed))
    if not report.results:
        out.say("Nothing to repair.")
    return EXIT_OK


def _repair_line(r: MigrationResult, completed: bool) -> str:
    if r.statement_index is None:
        return f"Repaired {r.version} ({r.description}): history now records {r.checksum}"
    if completed:
        return f"Settled {r.version}: statement {r.statement_index} recorded as done"
    return (
        f"Settled {r.version}: statement {r.statement_index} recorded as not done; "
        "the next run runs it again (pass --completed VERSION if it did complete)"
    )


def run_baseline(args: argparse.Namespace, out: Output) -> int:
    sources = _sources(args)
    with _migrator(args, out) as migrator:
        report = migrator.baseline(sources, args.baseline_version, description=args.description)
    out.say(
        f"Baselined at version {args.baseline_version}: "
        f"{len(report.results)} migrations recorded as applied without running."
    )
    return EXIT_OK


# -- output of runs ----------------------------------------------------------------------------


def _progress(
    out: Output, args: argparse.Namespace, sources: Sequence[MigrationSource]
) -> Callable[[MigrationResult], None] | None:
    """A line per migration as it finishes; with --verbose, its statements and tables too."""
    if getattr(args, "json", False):
        return None
    by_version = {s.version: s for s in sources}

    def show(result: MigrationResult) -> None:
        out.say(_result_line(result))
        if result.blocked_by and result.status != "failed":
            out.say(f"    waited on a lock held by {result.blocked_by}")
        source = by_version.get(result.version)
        if out.verbose and source is not None:
            sql = (source.down_sql or "") if result.kind == "rollback" else source.up_sql
            for line in _statement_lines(sql):
                out.detail(line)
        for label, names in (
            ("created", result.tables_created),
            ("altered", result.tables_altered),
            ("dropped", result.tables_dropped),
        ):
            if names:
                out.detail(f"    tables {label}: {', '.join(names)}")

    return show


def _statement_lines(sql: str) -> list[str]:
    """The statements of sql, for --verbose; through the engine's face at the call, because
    splitting loads the SQL parser (pglast), which nothing else of a run needs."""
    try:
        statements = engine.split_statements(sql)
    except ParseError as exc:
        return [f"    (does not parse: {exc})"]
    return [
        f"    {s.index:>3}. line {s.line:<4} {s.command}"
        + (f" {', '.join(s.relations)}" if s.relations else "")
        for s in statements
    ]


def _result_line(r: MigrationResult) -> str:
    state = {"success": "ok", "skipped": "skipped", "failed": "FAILED"}.get(r.status, r.status)
    rows = f"{r.rows_affected} row" + ("" if r.rows_affected == 1 else "s")
    retry = f", {r.attempts} attempts" if r.attempts > 1 else ""
    if r.batches is not None:
        retry += f", {r.batches} batch" + ("" if r.batches == 1 else "es")
    if r.rows_estimate is not None:
        retry += f", about {r.rows_estimate} rows in all"
    return (
        f"  {r.version:<12} {state:<7} {format_duration(r.duration_seconds):>8}  "
        f"{rows:<10} {r.description}{retry}"
    )


def _finish(report: RunReport, out: Output, args: argparse.Namespace, *, verb: str) -> int:
    if args.json:
        out.json(asdict(report))
    failed = report.failed
    if failed is not None:
        out.error(str(MigrationFailed(failed)))
        return EXIT_FAILED
    if not args.json:
        done = len(report.results)
        if done == 0:
            out.say(f"Nothing to do; schema version {report.schema_version or 'none'}.")
        else:
            noun = "migration" if done == 1 else "migrations"
            out.say(
                f"{verb} {done} {noun} in {format_duration(report.duration_seconds)}, "
                f"{report.rows_affected} rows; schema version "
                f"{report.schema_version or 'none'}."
            )
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
        out.warn(
            f"drift: {d.version} was applied with {d.applied_checksum}, "
            f"its file now has {d.source_checksum}"
        )
    if report.out_of_order:
        out.warn(
            "out of order: pending "
            + ", ".join(report.out_of_order)
            + f" older than the newest applied version {report.schema_version}"
        )
    for note in report.incomplete:
        out.warn(f"left midway: {note}")
    for problem in report.problems:
        out.warn(problem)
    if report.missing and not quiet:
        out.warn("applied but not in the directory: " + ", ".join(report.missing))
    if report.problems:
        out.error(f"{len(report.problems)} problem(s) in the migrations; see above")
        return EXIT_USAGE
    if report.drifted or report.out_of_order:
        out.error(
            "validation failed: "
            + "; ".join(
                filter(
                    None,
                    [
                        f"{len(report.drifted)} drifted" if report.drifted else "",
                        f"{len(report.out_of_order)} out of order" if report.out_of_order else "",
                    ],
                )
            )
        )
        return EXIT_DRIFT
    return EXIT_OK
