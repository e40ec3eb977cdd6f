"""Preflight for a whole directory: the checks a MigrationSet's Job runs once before its run.

The same checks as a single migration's preflight (``preflight``), over every migration the run
would touch: the database answers; the history is readable; no applied version drifted; nothing
pending is out of order (unless allowed); no other session holds locks on any relation the
pending migrations (or the rollbacks) name; no old transaction would stall a concurrent index
build. Read-only: it takes no lock and creates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubemigrate.engine.errors import ConnectionFailed, EngineError
from kubemigrate.engine.migrate import preflight as single
from kubemigrate.engine.migrate.migrator import Migrator
from kubemigrate.engine.migrate.results import ValidationReport
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.pg.redact import redact
from kubemigrate.engine.pg.session import Session

MAX_NAMED = 10
"""Versions named in one check's message; the rest are counted."""


def _named(versions: Sequence[str]) -> str:
    shown = ", ".join(versions[:MAX_NAMED])
    more = len(versions) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _order_checks(report: ValidationReport) -> list[single.Check]:
    checks = []
    if report.drifted:
        checks.append(
            single.Check(
                "drift",
                False,
                "applied versions whose files changed since: "
                + _named([d.version for d in report.drifted]),
            )
        )
    else:
        checks.append(single.Check("drift", True, "applied checksums match"))
    if report.out_of_order:
        checks.append(
            single.Check(
                "order",
                False,
                f"pending versions older than the applied {report.schema_version}: "
                + _named(list(report.out_of_order)),
            )
        )
    if report.problems:
        checks.append(single.Check("sources", False, "; ".join(report.problems)[:1000]))
    return checks


def run_set_preflight(
    engine: Migrator,
    url: str,
    sources: Sequence[MigrationSource],
    touched: Sequence[MigrationSource],
    *,
    target: str | None = None,
    allow_out_of_order: bool = False,
    long_transaction_seconds: float = 300.0,
) -> tuple[single.PreflightReport, ValidationReport | None]:
    """The checks for a run over sources that will run touched (the pending migrations, or the
    rollbacks); with the validation it read (None when the database could not be read)."""
    try:
        session = Session.connect(
            url, application_name="kubemigrate-preflight", connect_timeout=engine.connect_timeout
        )
    except ConnectionFailed as exc:
        check = single.Check("connectivity", False, str(exc))
        return single.PreflightReport((check,), reason=exc.reason), None
    checks: list[single.Check] = []
    with session:
        version = str(session.execute("SHOW server_version")[0][0])
        checks.append(single.Check("connectivity", True, f"PostgreSQL {version}"))
        try:
            report = engine.validate(sources, target=target, allow_out_of_order=allow_out_of_order)
        except EngineError as exc:
            checks.append(single.Check("history", False, redact(str(exc))))
            return single.PreflightReport(tuple(checks), version, False), None
        checks.append(
            single.Check("history", True, f"schema version {report.schema_version or 'none'}")
        )
        order = _order_checks(report)
        checks += order
        retryable = all(c.passed for c in order)
        checks.append(_lock_blockers(session, touched))
        checks.append(_old_transactions(session, touched, long_transaction_seconds))
    return single.PreflightReport(tuple(checks), version, retryable), report


_ANY_RELATION_LOCK = """
SELECT count(*) FROM pg_locks
WHERE granted AND pid <> pg_backend_pid() AND locktype = 'relation'
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _lock_blockers(session: Session, touched: Sequence[MigrationSource]) -> single.Check:
    """No other session holds a lock on a relation the run names. Parsing hundreds of files for
    the relations they name costs more than the run's first migrations: they are parsed only
    when some other session holds a relation lock at all."""
    if not session.execute(_ANY_RELATION_LOCK)[0][0]:
        return single.Check("lock-blockers", True, "no other session holds a lock on any relation")
    relations = sorted({r for s in touched for r in single.relations_of(s)})
    return single.lock_check(session, relations)


def _old_transactions(
    session: Session, touched: Sequence[MigrationSource], seconds: float
) -> single.Check:
    concurrent = next((s for s in touched if single.concurrent(s)), None)
    probe = concurrent or MigrationSource("0", "", "")
    return single.old_transactions(session, probe, seconds)
