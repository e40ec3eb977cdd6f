"""``kubemigrate preflight`` at work: the check the operator's preflight Job runs before a
migration. It takes the operator's plan file, not a migrations directory, and writes a compact
JSON result to --termination-log, which Kubernetes copies into the pod's status for the operator
to read (no log scraping). Imported only when it runs (cli.subcommands declares its arguments).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kubemigrate import jobresult
from kubemigrate.cli import results
from kubemigrate.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from kubemigrate.cli.output import Output, redacted
from kubemigrate.engine import MigrationSource, Migrator, run_preflight


def _write(path: Path | None, verdict: jobresult.Preflight, out: Output) -> None:
    """The verdict where the kubelet reads the termination message, masked as the output is
    (the database URL's password, and the whole value)."""
    if path is not None:
        jobresult.write(path, redacted(verdict, out.clean))


def run_preflight_command(args: argparse.Namespace, out: Output) -> int:
    """Check the plan's migration against the database; exit 0 only when every check passed."""
    try:
        plan = json.loads(args.plan.read_text())
        files = plan["sqlFiles"] if "sqlFiles" in plan else [plan["sqlFile"]]
        sql = "".join(
            Path(name).read_text(encoding="utf-8") for name in files
        )  # parts of one script
        source = MigrationSource(
            str(plan["version"]),
            plan.get("description") or "",
            sql,
            transactional=bool(plan.get("transactional", True)),
        )
    except (OSError, ValueError, KeyError) as exc:
        out.error(f"cannot read the preflight plan: {exc}")
        _write(args.termination_log, results.unreadable_plan(str(exc)), out)
        return EXIT_USAGE
    migrator = Migrator(
        args.database_url,
        history_schema=plan.get("historySchema", "kubemigrate"),
        application_name="kubemigrate-preflight",
        lock_wait_seconds=args.lock_wait,
    )
    report = run_preflight(
        migrator,
        args.database_url,
        source,
        requires=[str(v) for v in plan.get("requires", [])],
        expected={str(k): str(v) for k, v in plan.get("expected", {}).items()},
        dry_run=bool(plan.get("dryRun")),
        long_transaction_seconds=args.long_transaction,
    )
    for check in report.checks:
        out.say(f"  {'ok  ' if check.passed else 'FAIL'} {check.name:<18} {check.message}")
    _write(args.termination_log, results.preflight(report), out)
    if not report.ok:
        out.error(
            "preflight failed: "
            + "; ".join(f"{c.name}: {c.message}" for c in report.checks if not c.passed)
        )
        return EXIT_FAILED
    out.say(f"Preflight of version {source.version} passed.")
    return EXIT_OK
