"""Preflight: read-only checks that say whether a migration can be applied now, and why not.

They run before anything changes (in the operator, as a Job): the database answers and its
version; the history is readable; required versions are applied; applied checksums match what
the caller expects; no other session holds locks on the relations the migration names; no old
transaction would stall a concurrent index build; and, optionally, a dry run. The report is small
enough for a Kubernetes termination message (4 KiB).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from kubemigrate.engine.errors import ConnectionFailed, EngineError, ParseError
from kubemigrate.engine.migrate.migrator import Migrator
from kubemigrate.engine.migrate.results import VersionState
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.pg.redact import redact
from kubemigrate.engine.pg.session import Session

MAX_REPORT_BYTES = 4000
APPLIED_STATES = frozenset({"applied", "missing", "drifted"})

_LOCK_HOLDERS = """
SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), l.mode,
       c.oid::regclass::text,
       extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::float8
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> pg_backend_pid()
  AND l.relation = ANY (SELECT to_regclass(r) FROM unnest(%s::text[]) AS r)
ORDER BY l.pid
"""

_OLD_TRANSACTIONS = """
SELECT pid, coalesce(application_name, ''), coalesce(state, ''),
       extract(epoch FROM now() - xact_start)::float8
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
  AND now() - xact_start > make_interval(secs => %s)
ORDER BY xact_start
"""


@dataclass(frozen=True)
class Check:
    """One check's verdict, with what it found."""

    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class PreflightReport:
    """Every check that ran, in order; ok when all passed."""

    checks: tuple[Check, ...]
    server_version: str | None = None
    retryable: bool = True
    """Whether the same migration may pass later without a change (a lock, an outage), as
    opposed to a verdict only a change can alter (drift, SQL that fails)."""
    dry_run: dict[str, object] = field(default_factory=dict)
    reason: str | None = None
    """Why the database could not be used, when it could not: the ``reason`` of the
    ConnectionFailed (``ConnectionFailed``, ``AuthenticationFailed``, ``InvalidDatabaseUrl``)."""

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self, limit: int = MAX_REPORT_BYTES) -> str:
        """Compact JSON within limit bytes: messages are shortened until it fits."""
        checks = [asdict(c) for c in self.checks]
        data = {
            "ok": self.ok,
            "retryable": self.retryable,
            "serverVersion": self.server_version,
            "checks": checks,
            "dryRun": self.dry_run,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        text = json.dumps(data, separators=(",", ":"), default=str)
        room = 400
        while len(text.encode()) > limit and room > 20:
            for check in checks:
                check["message"] = check["message"][:room]
            text = json.dumps(data, separators=(",", ":"), default=str)
            room //= 2
        return text


def _relations(source: MigrationSource) -> list[str]:
    from kubemigrate.engine.migrate.statements import split_statements  # noqa: PLC0415 (pglast: slow)

    try:
        statements = split_statements(source.up_sql)
    except ParseError:
        return []
    return sorted({r for s in statements for r in s.relations})


def _concurrent(source: MigrationSource) -> bool:
    return not source.transactional and "concurrently" in source.up_sql.lower()


def _lock_check(session: Session, relations: list[str]) -> Check:
    if not relations:
        return Check("lock-blockers", True, "the migration names no existing relation")
    rows = session.execute(_LOCK_HOLDERS, [relations])
    if not rows:
        return Check(
            "lock-blockers", True, f"no other session holds locks on {', '.join(relations)}"
        )
    held = "; ".join(
        f"pid {pid} ({app or 'no application_name'}, {state or 'unknown'}, "
        f"{mode} on {rel}, transaction open {age:.0f}s)"
        for pid, app, state, mode, rel, age in rows[:5]
    )
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return Check("lock-blockers", False, f"locks held on the migration's relations: {held}{more}")


def _old_transactions(session: Session, source: MigrationSource, seconds: float) -> Check:
    rows = session.execute(_OLD_TRANSACTIONS, [seconds])
    if not rows:
        return Check("long-transactions", True, f"no transaction open longer than {seconds:.0f}s")
    found = "; ".join(
        f"pid {pid} ({app or 'no application_name'}, {state}, {age:.0f}s)"
        for pid, app, state, age in rows[:5]
    )
    if _concurrent(source):
        return Check(
            "long-transactions",
            False,
            f"a concurrent index build waits for every older transaction: {found}",
        )
    return Check("long-transactions", True, f"old transactions (not blocking): {found}")


def _requirements(states: Sequence[VersionState], requires: Sequence[str]) -> Check:
    applied = {s.version for s in states if s.state in APPLIED_STATES}
    missing = [v for v in requires if v not in applied]
    if missing:
        return Check("dependencies", False, "not applied yet: " + ", ".join(missing))
    return Check(
        "dependencies",
        True,
        f"{len(requires)} required version(s) applied" if requires else "none required",
    )


def _drift(
    states: Sequence[VersionState], source: MigrationSource, expected: Mapping[str, str]
) -> Check:
    wrong = []
    for state in states:
        if state.state == "drifted" and state.version == source.version:
            wrong.append(f"{state.version} (applied {state.checksum}, now {source.checksum})")
        elif (
            state.state in APPLIED_STATES
            and state.version in expected
            and state.checksum != expected[state.version]
        ):
            wrong.append(
                f"{state.version} (applied {state.checksum}, resource {expected[state.version]})"
            )
    if wrong:
        return Check("drift", False, "applied SQL differs from its source: " + "; ".join(wrong))
    return Check("drift", True, "applied checksums match")


def _dry_run(engine: Migrator, source: MigrationSource) -> tuple[Check, dict[str, object]]:
    report = engine.apply([source], dry_run=True, allow_out_of_order=True)
    result = report.results[0] if report.results else None
    if result is None:
        return Check("dry-run", True, "already applied; nothing to run"), {}
    summary: dict[str, object] = {
        "rowsAffected": result.rows_affected,
        "tablesCreated": list(result.tables_created),
        "tablesAltered": list(result.tables_altered),
        "tablesDropped": list(result.tables_dropped),
    }
    if result.ok:
        return Check(
            "dry-run",
            True,
            f"applied and rolled back in {result.duration_seconds:.3f}s"
            f", {result.rows_affected} row(s)",
        ), summary
    where = f" at line {result.line}" if result.line else ""
    return Check("dry-run", False, f"{result.sqlstate or 'error'}{where}: {result.error}"), summary


def run_preflight(
    engine: Migrator,
    url: str,
    source: MigrationSource,
    *,
    requires: Sequence[str] = (),
    expected: Mapping[str, str] | None = None,
    dry_run: bool = False,
    long_transaction_seconds: float = 300.0,
) -> PreflightReport:
    """Run every check against the database at url (which engine also points at)."""
    try:
        session = Session.connect(
            url, application_name="kubemigrate-preflight", connect_timeout=engine.connect_timeout
        )
    except ConnectionFailed as exc:
        return PreflightReport((Check("connectivity", False, str(exc)),), reason=exc.reason)
    checks: list[Check] = []
    dry: dict[str, object] = {}
    retryable = True
    with session:
        version = str(session.execute("SHOW server_version")[0][0])
        checks.append(Check("connectivity", True, f"PostgreSQL {version}"))
        try:
            states = engine.status([source])
        except EngineError as exc:
            checks.append(Check("history", False, redact(str(exc))))
            return PreflightReport(tuple(checks), version, False)
        checks.append(Check("history", True, f"{len(states)} version(s) known"))
        checks.append(_requirements(states, requires))
        drift = _drift(states, source, expected or {})
        checks.append(drift)
        retryable = drift.passed
        checks.append(_lock_check(session, _relations(source)))
        checks.append(_old_transactions(session, source, long_transaction_seconds))
    if dry_run and retryable:
        check, dry = _dry_run(engine, source)
        checks.append(check)
        retryable = check.passed
    return PreflightReport(tuple(checks), version, retryable, dry)


# The set preflight (``setpreflight``) runs the same checks over many migrations.
relations_of = _relations
concurrent = _concurrent
lock_check = _lock_check
old_transactions = _old_transactions
