"""A no-transaction migration: its statements one by one, in autocommit, on the locked session.

For what PostgreSQL refuses in a transaction block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``,
...). Since it cannot be atomic, the history says what happened: a ``pending`` row before the
first statement, ``success`` or ``failed`` after. A run that died in between leaves ``pending``
as the last word, which ``status`` shows as ``incomplete`` and the next ``apply`` runs again.

A failed ``CREATE INDEX CONCURRENTLY`` leaves an INVALID index behind, and rerunning the
statement then fails ("already exists") or, with ``IF NOT EXISTS``, silently keeps the broken
index. So before running (and before retrying a statement after lock_timeout) the invalid
indexes that the migration's statements create are dropped, concurrently.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kubemigrate.engine.migrate.catalog import TableChanges
from kubemigrate.engine.migrate.results import MigrationResult
from kubemigrate.engine.migrate.step import (
    LOCK_NOT_AVAILABLE,
    Failure,
    RunContext,
    Step,
    history_row,
    local_settings,
    locate,
    now,
    result_of,
    rows_affected,
    verify,
)
from kubemigrate.engine.pg.session import ScriptOutcome

if TYPE_CHECKING:  # the parser is loaded only when there is SQL to run
    from kubemigrate.engine.migrate.statements import Statement

def run_non_transactional(ctx: RunContext, step: Step) -> MigrationResult:
    session, catalog = ctx.session, ctx.catalog
    started_at, clock = now(), time.perf_counter()
    ctx.history.append(history_row(ctx, step, "pending", started_at=started_at,
                                   finished_at=started_at, duration=0.0))
    before = catalog.snapshot()
    rows, attempts = 0, 1
    failure: Failure | None = None
    session.script(session.reset_sql + ";" + local_settings(step.source, ctx.settings,
                                                            local=False))
    try:
        if step.statements is None:
            # The parser rejected the SQL: let the server say where. It parses the whole text
            # before running any of it, so nothing runs.
            ran = session.script(step.sql)
            if ran.error is not None:
                failure = locate(ran, step.sql, None, offset=0, skipped_results=0)
            rows = rows_affected(ran)
        else:
            drop_invalid_indexes(ctx, step.statements)
            for statement in step.statements:
                done, attempts = _run_statement(ctx, step, statement, attempts)
                if isinstance(done, Failure):
                    failure = done
                    break
                rows += done
        if failure is None:
            failure = verify(session, step)
    finally:
        session.rollback_if_open()
        session.reset()
    if step.statements is None or any(s.command == "DEALLOCATE" for s in step.statements):
        ctx.history.prepared = False  # the history's prepared INSERTs may be gone
    tables = catalog.diff(before, catalog.snapshot())
    row = history_row(ctx, step, "failed" if failure else "success", started_at=started_at,
                      finished_at=now(), duration=time.perf_counter() - clock, rows=rows,
                      failure=failure, attempts=attempts,
                      tables=tables if failure is None else TableChanges())
    ctx.history.append(row)
    return result_of(row)


def _run_statement(ctx: RunContext, step: Step, statement: Statement,
                   attempts: int) -> tuple[int | Failure, int]:
    """Rows the statement affected, or its failure; and the attempts used so far."""
    policy = ctx.settings.retry
    tries = 1
    while True:
        ran = ctx.session.script(statement.text)
        if ran.error is None:
            return rows_affected(ran), attempts
        if ran.error.sqlstate == LOCK_NOT_AVAILABLE and tries < max(1, policy.attempts):
            ctx.session.rollback_if_open()
            delay = policy.delay(tries)
            ctx.progress(f"{step.kind} {step.version}, statement {statement.index}: lock not"
                         f" available; retrying in {delay:.2f}s")
            time.sleep(delay)
            drop_invalid_indexes(ctx, [statement])
            tries += 1
            attempts += 1
            continue
        return _failure(ran, statement), attempts


def _failure(ran: ScriptOutcome, statement: Statement) -> Failure:
    assert ran.error is not None
    line = statement.line
    if ran.error.position is not None and 0 < ran.error.position <= len(statement.text):
        line += statement.text.count("\n", 0, ran.error.position - 1)
    return Failure(ran.error, statement.index, line)



def drop_invalid_indexes(ctx: RunContext, statements: Sequence[Statement]) -> None:
    """Drop the INVALID indexes a failed concurrent build of these statements left behind."""
    for name in ctx.catalog.invalid_indexes(statements):
        ctx.progress(f"dropping invalid index {name} left by an earlier failed build")
        dropped = ctx.session.script(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        if dropped.error is not None:
            ctx.progress(f"could not drop invalid index {name}: {dropped.error.message}")
