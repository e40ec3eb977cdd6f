"""``kubemigrate fleet-worker`` at work: one pod of a fleet wave's Job.

It claims targets from the wave's ledger ConfigMap one at a time until the ledger says stop
(every target claimed, the wave halted or paused), resolves each target's database (cli.
fleet_targets), runs the set on it exactly as ``run-set`` does (``migrate_set.set_run``) and
records the outcome in the ledger. A failed target is the ledger's business, not the pod's: the
worker goes on to the next one and exits 0. Only a worker that cannot go on (no API server, its
ledger unreadable) exits non-zero. One JSON line per target on stdout; everything a run prints
goes to stderr, masked with that target's secrets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kubemigrate import jobresult
from kubemigrate.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from kubemigrate.cli.fleet_targets import SchemaTargets, SecretTargets, TargetFailed
from kubemigrate.cli.incluster import ApiError, InCluster, NotInCluster
from kubemigrate.cli.ledger_store import LedgerStore
from kubemigrate.cli.migrate_set import set_run
from kubemigrate.cli.output import Output, redacted
from kubemigrate.fleetledger import TargetError


@dataclass(frozen=True)
class Outcome:
    """How one target's run ended, as the ledger and the JSON line need it."""

    ok: bool
    reason: str
    version: str | None
    rows: int = 0
    error: TargetError | None = None


def run_fleet_worker(args: argparse.Namespace, out: Output) -> int:
    """Claim, run and record targets until the wave's ledger says stop."""
    try:
        api = InCluster.from_environment(args.service_account_dir)
    except NotInCluster as exc:
        return _finish(args, _result("NotInCluster", f"not in a pod: {exc}"), out)
    namespace = args.namespace or api.namespace
    if not namespace:
        why = "no namespace: pass --namespace or mount the ServiceAccount's"
        return _finish(args, _result("InvalidArguments", why), out)
    try:
        names = read_targets(args.targets_file)
    except (OSError, UnicodeDecodeError) as exc:
        why = f"cannot read the targets file: {exc}"
        return _finish(args, _result("InvalidArguments", why), out)
    targets: SecretTargets | SchemaTargets = (
        SecretTargets(api, namespace, args.secret_key, args.history_schema)
        if args.secret_key is not None
        else SchemaTargets(api, namespace, args.schemas_secret, args.schemas_key)
    )
    worker = _Worker(args, targets, LedgerStore(api, namespace, args.ledger), out)
    try:
        while (index := worker.ledger.claim(len(names))) is not None:
            worker.one(index, names[index])
    except ApiError as exc:
        why = f"the worker cannot go on: {exc}"
        return _finish(args, _result("ApiError", why, worker.ran, worker.failed), out)
    stopped = worker.ledger.stopped or "done"
    return _finish(args, _result(stopped, None, worker.ran, worker.failed), out)


def _result(reason: str, error: str | None, ran: int = 0, failed: int = 0) -> jobresult.FleetWorker:
    return {"ok": error is None, "reason": reason, "ran": ran, "failed": failed, "error": error}


def _finish(args: argparse.Namespace, result: jobresult.FleetWorker, out: Output) -> int:
    """Write result to --termination-log, say how the loop ended on stderr; the exit status."""
    path: Path | None = args.termination_log
    if path is not None:
        jobresult.write(path, redacted(result, out.clean))
    if result["error"] is not None:
        out.error(result["error"])
        return EXIT_USAGE if result["reason"] == "InvalidArguments" else EXIT_FAILED
    print(
        f"fleet-worker: stopped: {result['reason']} ({result['ran']} target(s) run here, "
        f"{result['failed']} failed)",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_OK


def read_targets(path: Path) -> list[str]:
    """The wave's target names, one a line, blank lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


@dataclass
class _Worker:
    args: argparse.Namespace
    targets: SecretTargets | SchemaTargets
    ledger: LedgerStore
    out: Output
    ran: int = 0
    failed: int = 0

    def one(self, index: int, name: str) -> None:
        """Run target index, record it in the ledger, and print its line."""
        clock = time.monotonic()
        outcome = run_target(self.args, name, self.targets)
        self.ran += 1
        self.failed += 0 if outcome.ok else 1
        self.ledger.record(
            index,
            name=name,
            ok=outcome.ok,
            version=outcome.version,
            rows=outcome.rows,
            error=outcome.error,
        )
        line = {
            "index": index,
            "name": name,
            "ok": outcome.ok,
            "reason": outcome.reason,
            "version": outcome.version,
            "seconds": round(time.monotonic() - clock, 3),
            "error": outcome.error.message if outcome.error else None,
        }
        self.out.say(json.dumps(line, separators=(",", ":"), ensure_ascii=False))


def run_target(
    args: argparse.Namespace, name: str, targets: SecretTargets | SchemaTargets
) -> Outcome:
    """Resolve target name and run the set on it; every failure is the Outcome's."""
    try:
        resolved = targets.resolve(name)
    except TargetFailed as exc:
        message = f"{exc.reason}: {exc.message}"
        return Outcome(False, exc.reason, None, error=TargetError(name, None, None, message))
    run_out = Output(verbose=args.verbose, secrets=resolved.secrets, stdout=sys.stderr)
    try:
        data = redacted(
            set_run(args, resolved.url, resolved.history_schema, run_out), run_out.clean
        )
    except Exception as exc:  # a bug or an error the run does not report: still this target's
        message = run_out.clean(f"InternalError: {type(exc).__name__}: {exc}")
        return Outcome(False, "InternalError", None, error=TargetError(name, None, None, message))
    version = data.get("schemaVersion")
    if data["ok"]:
        return Outcome(True, data["reason"], version, data["rowsAffected"])
    last: jobresult.SetError = data.get("lastError") or {"message": ""}
    error = TargetError(
        name, last.get("version"), last.get("sqlstate"), f"{data['reason']}: {data['error']}"
    )
    return Outcome(False, data["reason"], version, data["rowsAffected"], error)
