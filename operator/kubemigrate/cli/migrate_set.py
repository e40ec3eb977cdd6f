"""``kubemigrate run-set`` at work: one MigrationSet run, as the operator's Job runs it.

It reads the directory as ``apply`` does, checks the run once (``run_set_preflight``), then
applies the pending migrations up to the target through the engine's apply, each in its own
transaction with its history row, or, when the target is below the applied version, rolls back
newest first with the down files (``rollback --target``). Its result (``jobresult.SetRun``) goes
to --termination-log, where the operator reads it from the pod's status. Imported only when it
runs (cli.subcommands declares its arguments).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kubemigrate import engine, jobresult
from kubemigrate.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from kubemigrate.cli.output import Output, format_duration, redacted
from kubemigrate.engine import (
    ConnectionFailed,
    EngineError,
    LockTimeout,
    MigrationResult,
    MigrationSource,
    Migrator,
    Origin,
    ParseError,
    RunReport,
    SourceError,
    version_key,
)

PREFLIGHT_REASONS = (
    ("drift", "DriftDetected"),
    ("order", "OutOfOrder"),
    ("sources", "InvalidSource"),
)
"""The reason of a failed preflight, after the first failed check that names one."""
RECENT = 10
"""Migrations of a run listed in its result (the newest)."""
PLAN = 100
"""Versions of a dry run's plan listed in its result (the first)."""


class _Run:
    """One run's facts, gathered as it goes, and its result."""

    def __init__(self, args: argparse.Namespace, url: str) -> None:
        self.args = args
        self.url = url
        self.started = datetime.now(UTC)
        self.clock = time.monotonic()
        self.checksum: str | None = None
        self.direction = "apply"
        self.checks: list[jobresult.Check] = []

    def result(
        self,
        reason: str,
        *,
        ok: bool = False,
        transient: bool = False,
        error: str | None = None,
        report: RunReport | None = None,
        sources: Sequence[MigrationSource] = (),
    ) -> jobresult.SetRun:
        results = report.results if report is not None else ()
        done = [r for r in results if r.status == "success"]
        data: jobresult.SetRun = {
            "ok": ok,
            "direction": self.direction,
            "reason": reason,
            "transient": transient,
            "dryRun": bool(self.args.dry_run),
            "applied": sum(1 for r in done if r.kind == "apply"),
            "rolledBack": sum(1 for r in done if r.kind == "rollback"),
            "rowsAffected": sum(r.rows_affected for r in results),
            "startedAt": _time(self.started),
            "completedAt": _time(datetime.now(UTC)),
            "durationSeconds": round(time.monotonic() - self.clock, 3),
            "recent": [_migration(r) for r in results[-RECENT:]],
            "error": error,
        }
        if self.checksum is not None:
            data["sourceChecksum"] = self.checksum
        if report is not None:
            data["schemaVersion"] = report.schema_version
        if self.checks:
            data["checks"] = self.checks
        if self.args.dry_run and report is not None:
            data["versions"] = [r.version for r in results[:PLAN]]
            data["tablesCreated"] = sorted({t for r in results for t in r.tables_created})
        failed = report.failed if report is not None else None
        if failed is not None:
            data["lastError"] = _error(failed, sources)
        return data


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _migration(r: MigrationResult) -> jobresult.SetMigration:
    return {
        "version": r.version,
        "description": r.description[:100],
        "kind": r.kind,
        "durationSeconds": round(r.duration_seconds, 4),
        "rowsAffected": r.rows_affected,
        "tablesCreated": list(r.tables_created[:5]),
    }


def _error(failed: MigrationResult, sources: Sequence[MigrationSource]) -> jobresult.SetError:
    """lastError of the migration that stopped the run: its file and, where known, the text of
    the statement that failed (the engine reports its index and line)."""
    error: jobresult.SetError = {"version": failed.version, "message": failed.error or "failed"}
    source = next((s for s in sources if s.version == failed.version), None)
    if source is not None and source.path:
        error["file"] = os.path.basename(source.path)  # noqa: PTH119 (a path string)
    if failed.sqlstate:
        error["sqlstate"] = failed.sqlstate
    if failed.line is not None:
        error["line"] = failed.line
    if failed.statement_index is not None and source is not None:
        sql = (source.down_sql or "") if failed.kind == "rollback" else source.up_sql
        error["statement"] = _statement(sql, failed.statement_index)
    return error


def _statement(sql: str, index: int) -> str:
    try:
        found = next((s for s in engine.split_statements(sql) if s.index == index), None)
    except ParseError:
        found = None
    return found.text.strip()[:500] if found is not None else f"statement {index}"


def _finish(args: argparse.Namespace, data: jobresult.SetRun, out: Output) -> int:
    path: Path | None = args.termination_log
    if path is not None:
        jobresult.write(path, redacted(data, out.clean))
    if args.json:
        out.json(redacted(data, out.clean))
    if data["ok"]:
        down = data["direction"] == "rollback"
        verb = "Rolled back" if down else "Applied"
        count = data["rolledBack"] if down else data["applied"]
        if data["dryRun"]:
            verb = f"Dry-ran ({verb.lower()})"
            count = len(data.get("versions") or [])
        out.say(
            f"{verb} {count} migration(s) in {format_duration(data['durationSeconds'])}; "
            f"schema version {data.get('schemaVersion') or 'none'}."
        )
        return EXIT_OK
    out.error(f"{data['reason']}: {data['error']}")
    return EXIT_USAGE if data["reason"] in ("InvalidSource", "InvalidTarget") else EXIT_FAILED


def _is_rollback(target: str | None, schema_version: str | None) -> bool:
    if target is None or schema_version is None:
        return False
    return version_key(target) < version_key(schema_version)


def _touched(
    sources: Sequence[MigrationSource], target: str | None, pending: Sequence[str], down: bool
) -> list[MigrationSource]:
    """What the run will run: the pending versions, or the rollbacks above target."""
    if not down:
        wanted = set(pending)
        return [s for s in sources if s.version in wanted]
    assert target is not None
    limit = version_key(target)
    return [
        MigrationSource(s.version, s.description, s.down_sql or "", transactional=s.transactional)
        for s in sources
        if s.key > limit
    ]


def run_set(args: argparse.Namespace, out: Output) -> int:
    """One MigrationSet run over args.directory; the result also goes to --termination-log."""
    return _finish(args, set_run(args, args.database_url, args.history_schema, out), out)


def set_run(
    args: argparse.Namespace, url: str, history_schema: str, out: Output
) -> jobresult.SetRun:
    """One set run of args.directory on the database at url, its history in history_schema:
    what ``run-set`` reports, and what a fleet worker runs on each target. Engine errors are
    the result's reason; the result is not yet redacted (the caller's Output knows the
    secrets)."""
    run = _Run(args, url)
    try:
        run.checksum = engine.files_checksum(engine.directory_files(args.directory))
        sources = engine.load_directory(args.directory)
    except (SourceError, OSError) as exc:
        return run.result("InvalidSource", error=str(exc))
    if not sources:
        return run.result("EmptySource", error="the source holds no migrations")
    target: str | None = args.target
    known = {s.version for s in sources}
    if target is not None and target != "0" and target not in known:
        return run.result(
            "InvalidTarget", error=f"targetVersion {target} is not a version of the source"
        )
    migrator = Migrator(
        url,
        history_schema=history_schema,
        application_name="kubemigrate-set",
        lock_wait_seconds=args.lock_wait,
        default_lock_timeout=args.lock_timeout,
        default_statement_timeout=args.statement_timeout,
        actor=args.actor,
        origin=Origin(args.resource_name, args.resource_uid, args.resource_generation)
        if args.resource_name
        else None,
        on_progress=out.detail,
    )
    try:
        return _run(run, migrator, sources, target, out)
    except (ConnectionFailed, LockTimeout) as exc:
        reason = getattr(exc, "reason", type(exc).__name__)
        return run.result(reason, transient=True, error=str(exc))
    except EngineError as exc:
        return run.result(type(exc).__name__, error=str(exc))


def _run(
    run: _Run, migrator: Migrator, sources: list[MigrationSource], target: str | None, out: Output
) -> jobresult.SetRun:
    args = run.args
    state = migrator.validate(sources, target=target, allow_out_of_order=True)
    down = _is_rollback(target, state.schema_version) or target == "0"
    run.direction = "rollback" if down else "apply"
    touched = _touched(sources, target, state.pending, down)
    if args.preflight:
        report, _ = engine.run_set_preflight(
            migrator,
            run.url,
            sources,
            touched,
            target=None if down else target,
            allow_out_of_order=args.allow_out_of_order or down,
            long_transaction_seconds=args.long_transaction,
        )
        run.checks = [
            {"name": c.name, "passed": c.passed, "message": c.message} for c in report.checks
        ]
        for check in report.checks:
            out.say(f"  {'ok  ' if check.passed else 'FAIL'} {check.name:<18} {check.message}")
        if not report.ok:
            why = "; ".join(f"{c.name}: {c.message}" for c in report.checks if not c.passed)
            names = {c.name for c in report.checks if not c.passed}
            reason = report.reason or next(
                (r for n, r in PREFLIGHT_REASONS if n in names), "PreflightFailed"
            )
            return run.result(reason, transient=report.retryable, error=why)
    if down:
        assert target is not None
        result = migrator.rollback(sources, target=target, dry_run=args.dry_run)
    else:
        result = migrator.apply(
            sources,
            target=target,
            dry_run=args.dry_run,
            allow_out_of_order=args.allow_out_of_order,
        )
    failed = result.failed
    if failed is not None:
        where = f" (statement {failed.statement_index})" if failed.statement_index else ""
        message = f"migration {failed.version}{where}: {failed.sqlstate or 'error'}: {failed.error}"
        return run.result("SQLError", error=message, report=result, sources=sources)
    reason = "RolledBack" if down else "Applied"
    return run.result(reason, ok=True, report=result, sources=sources)
