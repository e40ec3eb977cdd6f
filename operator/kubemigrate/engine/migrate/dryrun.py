"""A dry run: the pending migrations, in order, inside one transaction that is rolled back.

Each migration runs in a savepoint with its own timeouts, so a lock_timeout can be retried
without losing the earlier ones; later migrations see what earlier ones did, as they would for
real. The report says what each would change (rows, tables created, altered, dropped: a full
catalog comparison). Nothing is written, not even a history row: the database is exactly as
before, and a dry run on a database without a history does not create one.

No-transaction migrations cannot run inside the transaction; they are reported as skipped.
A migration with a batched statement runs the statements before it and its first batch, and
reports the estimate of the rows it would change in all; what follows it is not run (it
would see the table after one batch, not after the whole backfill).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime

from kubemigrate.engine.migrate.results import MigrationResult
from kubemigrate.engine.migrate.step import (
    Failure,
    RunContext,
    Step,
    local_settings,
    locate,
    now,
    rows_affected,
    verify,
)

_SAVEPOINT = "kubemigrate_dry_run"


def dry_run(ctx: RunContext, steps: list[Step]) -> list[MigrationResult]:
    """Results of running steps inside one rolled-back transaction; stops at the first failure."""
    results: list[MigrationResult] = []
    opened = ctx.session.script("BEGIN")
    if opened.error is not None:  # pragma: no cover - BEGIN on an idle session
        raise RuntimeError(opened.error.message)
    try:
        for step in steps:
            if not step.source.transactional:
                results.append(_skipped(step))
                continue
            result = _one_batched(ctx, step) if step.batches else _one(ctx, step)
            results.append(result)
            if not result.ok:
                break
    finally:
        ctx.session.rollback_if_open()
    return results


def _one(ctx: RunContext, step: Step) -> MigrationResult:
    session, policy = ctx.session, ctx.settings.retry
    started_at, clock = now(), time.perf_counter()
    attempt = 1
    while True:
        before = ctx.catalog.snapshot()
        prefix = (
            f"SAVEPOINT {_SAVEPOINT};{session.resets};"
            + local_settings(step.source, ctx.settings)
            + "\n"
        )
        ran = session.script(prefix + step.sql)
        failure: Failure | None = None
        if ran.error is not None:
            failure = locate(
                ran,
                step.sql,
                step.statements,
                offset=len(prefix),
                skipped_results=prefix.count(";"),
            )
            # After a syntax error nothing ran, not even the savepoint: the transaction is lost.
            if failure.retryable:
                failure = replace(failure, blocked_by=ctx.activity.blockers())
            if (
                failure.retryable
                and attempt < max(1, policy.attempts)
                and ran.failed_at is not None
                and ran.failed_at > 0
            ):
                session.script(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                held = f", held by {failure.blocked_by}" if failure.blocked_by else ""
                ctx.progress(f"dry run of {step.version}: lock not available{held}; retrying")
                time.sleep(policy.delay(attempt))
                attempt += 1
                continue
        else:
            failure = verify(session, step)
        if failure is not None:
            return _result(step, started_at, time.perf_counter() - clock, attempt, failure=failure)
        changes = ctx.catalog.diff(before, ctx.catalog.snapshot())
        session.script(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return MigrationResult(
            version=step.version,
            description=step.source.description,
            kind="dry_run",
            status="success",
            checksum=step.source.checksum,
            started_at=started_at,
            finished_at=now(),
            duration_seconds=time.perf_counter() - clock,
            rows_affected=rows_affected(ran, prefix.count(";")),
            tables_created=changes.created,
            tables_altered=changes.altered,
            tables_dropped=changes.dropped,
            attempts=attempt,
        )


def _result(
    step: Step, started_at: datetime, duration: float, attempts: int, *, failure: Failure
) -> MigrationResult:
    return MigrationResult(
        version=step.version,
        description=step.source.description,
        kind="dry_run",
        status="failed",
        checksum=step.source.checksum,
        started_at=started_at,
        finished_at=now(),
        duration_seconds=duration,
        sqlstate=failure.error.sqlstate,
        error=failure.message,
        statement_index=failure.statement_index,
        line=failure.line,
        attempts=attempts,
        blocked_by=failure.blocked_by,
    )


def _skipped(step: Step) -> MigrationResult:
    at = now()
    return MigrationResult(
        version=step.version,
        description=step.source.description,
        kind="dry_run",
        status="skipped",
        checksum=step.source.checksum,
        started_at=at,
        finished_at=at,
        duration_seconds=0.0,
        error="no-transaction migration: it cannot run inside the dry run's transaction,"
        " so it was not checked",
    )


def _one_batched(ctx: RunContext, step: Step) -> MigrationResult:
    """A migration with batched statements: the statements before the first one and its first
    batch, in a savepoint."""
    from kubemigrate.engine.migrate.batchrun import BatchLoop  # noqa: PLC0415 - a cycle
    from kubemigrate.engine.migrate.nontransactional import statement_failure  # noqa: PLC0415

    session = ctx.session
    started_at, clock = now(), time.perf_counter()
    before = ctx.catalog.snapshot()
    session.script(
        f"SAVEPOINT {_SAVEPOINT};{session.resets};" + local_settings(step.source, ctx.settings)
    )
    rows, batches, estimate = 0, 0, None
    for statement in step.statements or ():
        batched = step.batches.get(statement.index)
        if batched is None:
            ran = session.script(statement.text)
            if ran.error is not None:
                failure = statement_failure(ran, statement, 0)
                return _result(step, started_at, time.perf_counter() - clock, 1, failure=failure)
            rows += rows_affected(ran)
            continue
        loop = BatchLoop(ctx, step, statement, batched, progress=None, checkpoint=None)
        done, estimate, failed = loop.first_batch()
        if failed is not None:
            return _result(step, started_at, time.perf_counter() - clock, 1, failure=failed)
        rows, batches = rows + done, batches + 1
        about = f"about {estimate} rows in all" if estimate is not None else "no estimate"
        later = len(step.statements or ()) - statement.index
        ctx.progress(
            f"dry run {step.version}, statement {statement.index}: its first batch of"
            f" {batched.spec.size} changed {done} rows; {about}"
            f" ({loop.estimate_source or 'none'}); the {later} statement(s) after it not run"
        )
        break
    changes = ctx.catalog.diff(before, ctx.catalog.snapshot())
    session.script(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    return MigrationResult(
        version=step.version,
        description=step.source.description,
        kind="dry_run",
        status="success",
        checksum=step.source.checksum,
        started_at=started_at,
        finished_at=now(),
        duration_seconds=time.perf_counter() - clock,
        rows_affected=rows,
        tables_created=changes.created,
        tables_altered=changes.altered,
        tables_dropped=changes.dropped,
        batches=batches,
        rows_estimate=estimate,
    )
