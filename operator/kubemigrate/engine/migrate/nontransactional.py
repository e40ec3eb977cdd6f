"""A no-transaction migration: its statements one by one on the locked session, each recorded.

For what PostgreSQL refuses in a transaction block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``,
...). It cannot be atomic, so the history and the progress row (see ``progress``) say exactly
how far it got: a ``pending`` history row and the progress row before the first statement;
each statement that may run in a transaction goes as ``BEGIN; <statement>; <progress>;
COMMIT``, so that it and its record commit together; one that may not is marked running, sent
alone, then marked done; a ``BEGIN ... COMMIT`` block of the migration's own records its
progress in its own COMMIT. Then a ``success`` row (the progress row deleted) or a ``failed``
one. A run that died in between leaves ``pending`` as the last word, which ``status`` shows as
``incomplete``, and the next run resumes at the first statement not known done.

A failed ``CREATE INDEX CONCURRENTLY`` leaves an INVALID index behind, and rerunning the
statement then fails ("already exists") or, with ``IF NOT EXISTS``, silently keeps the broken
index. So before running (and before retrying a statement after lock_timeout) the invalid
indexes that the remaining statements create are dropped, concurrently.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from kubemigrate.engine.migrate.batchrun import BatchLoop
from kubemigrate.engine.migrate.catalog import TableChanges
from kubemigrate.engine.migrate.checksum import sql_checksum
from kubemigrate.engine.migrate.history import AS_RUNNER, HistoryRow
from kubemigrate.engine.migrate.progress import (
    FRESH,
    INDEX_BUILD,
    INDEX_DROP,
    ProgressSql,
    Resume,
    replayed,
)
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

_ALONE_AFTER = frozenset({"25001", "2D000"})
"""Refused inside a transaction block after all (a statement the splitter did not know to
refuse), or a procedure or DO block that commits (invalid transaction termination): run alone."""


def run_non_transactional(ctx: RunContext, step: Step, resume: Resume = FRESH) -> MigrationResult:
    return _Run(ctx, step, resume).run()


class _Run:
    """One run of one no-transaction step."""

    def __init__(self, ctx: RunContext, step: Step, resume: Resume) -> None:
        self.ctx = ctx
        self.step = step
        self.resume = resume
        self.progress = ProgressSql(
            ctx.history.table("progress"), step, str(ctx.run_id), sql_checksum(step.sql)
        )
        self.recorded = step.statements is not None
        """Whether the run keeps a progress row: not for SQL the parser rejected (the server
        rejects it whole, so none of it runs)."""
        self.rows = 0
        self.attempts = 1
        self.blocked_by: str | None = None
        """Who was seen holding the locks the run waited for."""
        self.batches = 0
        """Batches this run committed, of its batched statements."""

    def run(self) -> MigrationResult:
        ctx, step, session = self.ctx, self.step, self.ctx.session
        started_at, clock = now(), time.perf_counter()
        if self.resume.note is not None:
            ctx.progress(f"{step.kind} {step.version}: {self.resume.note}")
        self._record(
            history_row(
                ctx, step, "pending", started_at=started_at, finished_at=started_at, duration=0.0
            ),
            self.progress.start(self.resume.start - 1, keep_batch=self.resume.batch is not None),
        )
        before = ctx.catalog.snapshot()
        session.script(
            session.reset_sql + ";" + local_settings(step.source, ctx.settings, local=False)
        )
        try:
            failure = self._statements()
            if failure is None:
                failure = verify(session, step)
        finally:
            if not session.conn.closed:  # else the error that closed it is the one to tell
                session.rollback_if_open()
                session.reset()
        if step.statements is None or any(s.command == "DEALLOCATE" for s in step.statements):
            ctx.history.prepared = False  # the history's prepared INSERTs may be gone
        tables = ctx.catalog.diff(before, ctx.catalog.snapshot())
        row = history_row(
            ctx,
            step,
            "failed" if failure else "success",
            started_at=started_at,
            finished_at=now(),
            duration=time.perf_counter() - clock,
            rows=self.rows,
            failure=failure,
            attempts=self.attempts,
            tables=tables if failure is None else TableChanges(),
            blocked_by=self.blocked_by if self.attempts > 1 else None,
        )
        self._record(row, self.progress.finished() if failure is None else self.progress.settled())
        result = result_of(row)
        return replace(result, batches=self.batches) if step.batches else result

    def _record(self, row: HistoryRow, progress: str) -> None:
        self.ctx.history.append(row, also=progress if self.recorded else None)

    def _statements(self) -> Failure | None:
        step, session = self.step, self.ctx.session
        if step.statements is None:
            # The parser rejected the SQL: let the server say where. It parses the whole text
            # before running any of it, so nothing runs.
            ran = session.script(step.sql)
            self.rows = rows_affected(ran)
            return locate(ran, step.sql, None, offset=0, skipped_results=0) if ran.error else None
        for statement in replayed(step.statements, self.resume.start):
            ran = session.script(statement.text)
            if ran.error is not None:
                return statement_failure(ran, statement, 0)
        remaining = step.statements[self.resume.start - 1 :]
        drop_invalid_indexes(self.ctx, remaining)
        for unit in units(step, remaining):
            statement = unit[0]
            if statement.index in self.resume.check and self._settled(statement):
                self._mark(self.progress.done(statement.index))
                continue
            if statement.index in step.batches:
                failure = self._run_batched(statement)
            elif len(unit) > 1:
                failure = self._run_group(unit)
            else:
                failure = self._run_statement(statement)
            if failure is not None:
                return failure
        return None

    def _run_batched(self, statement: Statement) -> Failure | None:
        """Run a batched statement from its checkpoint (see ``batchrun``)."""
        checkpoint = self.resume.batch if statement.index == self.resume.start else None
        loop = BatchLoop(
            self.ctx,
            self.step,
            statement,
            self.step.batches[statement.index],
            progress=self.progress,
            checkpoint=checkpoint,
        )
        outcome = loop.run()
        self.rows += outcome.rows
        self.batches += outcome.batches
        self.attempts += outcome.retries
        self.blocked_by = outcome.blocked_by or self.blocked_by
        return outcome.failure

    def _run_group(self, unit: Sequence[Statement]) -> Failure | None:
        """Run consecutive statements of a batched migration in one transaction, with their
        progress, retrying on lock_timeout; its failure, if it failed."""
        policy, session = self.ctx.settings.retry, self.ctx.session
        first, last = unit[0], unit[-1]
        self.ctx.activity.doing = (
            f"{self.step.kind} of migration {self.step.version}, statements"
            f" {first.index} to {last.index} (lines {first.line} to {last.line})"
        )
        text, head = span(self.step.sql, unit), "BEGIN;\n"
        tail = f"\n;{AS_RUNNER};{self.progress.done(last.index)};COMMIT"
        tries = 1
        while True:
            ran = session.script(head + text + tail)
            if ran.error is None:
                self.rows += rows_affected(ran, 1, 1 + len(unit))
                return None
            session.rollback_if_open()
            failure = _group_failure(ran, unit, text, len(head))
            if ran.error.sqlstate != LOCK_NOT_AVAILABLE:
                return failure
            self.blocked_by = self.ctx.activity.blockers() or self.blocked_by
            if tries >= max(1, policy.attempts):
                return replace(failure, blocked_by=self.blocked_by)
            delay = policy.delay(tries)
            self.ctx.progress(
                f"{self.step.kind} {self.step.version}, statements {first.index} to"
                f" {last.index}: lock not available; retrying in {delay:.2f}s"
            )
            time.sleep(delay)
            tries += 1
            self.attempts += 1

    def _settled(self, statement: Statement) -> bool:
        """Whether the catalog shows statement done (its run may have finished unseen)."""
        catalog, say = self.ctx.catalog, self.ctx.progress
        where = f"{self.step.kind} {self.step.version}, statement {statement.index}"
        if statement.command == INDEX_BUILD and catalog.index_built(statement):
            say(f"{where}: index {statement.index_name} exists and is valid; counted as done")
            return True
        if statement.command == INDEX_DROP and not catalog.any_exists(statement.relations):
            say(f"{where}: the index is gone; counted as done")
            return True
        return False

    def _run_statement(self, statement: Statement) -> Failure | None:
        """Run statement, retrying on lock_timeout; its failure, if it failed."""
        policy, session = self.ctx.settings.retry, self.ctx.session
        self.ctx.activity.doing = (
            f"{self.step.kind} of migration {self.step.version},"
            f" statement {statement.index} (line {statement.line},"
            f" {statement.command})"
        )
        tries = 1
        while True:
            ran, at, offset = self._send(statement)
            if ran.error is None:
                self.rows += rows_affected(ran, at, at + 1)
                return None
            if ran.error.sqlstate == LOCK_NOT_AVAILABLE:
                self.blocked_by = self.ctx.activity.blockers() or self.blocked_by
            if ran.error.sqlstate != LOCK_NOT_AVAILABLE:
                return statement_failure(ran, statement, offset)
            if tries >= max(1, policy.attempts):
                return replace(
                    statement_failure(ran, statement, offset), blocked_by=self.blocked_by
                )
            session.rollback_if_open()
            delay = policy.delay(tries)
            held = f", held by {self.blocked_by}" if self.blocked_by else ""
            self.ctx.progress(
                f"{self.step.kind} {self.step.version}, statement"
                f" {statement.index}: lock not available{held}; retrying in"
                f" {delay:.2f}s"
            )
            time.sleep(delay)
            drop_invalid_indexes(self.ctx, [statement])
            tries += 1
            self.attempts += 1

    def _send(self, statement: Statement) -> tuple[ScriptOutcome, int, int]:
        """Send statement as its kind requires; what came back, which result is the
        statement's, and where its text starts in what was sent."""
        session = self.ctx.session
        if session.in_transaction:  # within a BEGIN ... COMMIT of the migration's own
            if statement.command != "COMMIT":
                return session.script(statement.text), 0, 0
            head = f"{AS_RUNNER};{self.progress.done(statement.index)};\n"
            return session.script(head + statement.text), head.count(";"), len(head)
        if statement.transaction_forbidden:
            return self._alone(statement, mark=True), 0, 0
        if statement.transaction_control:
            return self._alone(statement, mark=False), 0, 0
        head = "BEGIN;\n"
        # The newline ends a "--" comment the statement's text may end with.
        ran = session.script(
            f"{head}{statement.text}\n;{AS_RUNNER};{self.progress.done(statement.index)};COMMIT"
        )
        if ran.error is not None and ran.failed_at == 1 and ran.error.sqlstate in _ALONE_AFTER:
            session.rollback_if_open()
            return self._alone(statement, mark=True), 0, 0
        return ran, 1, len(head)

    def _alone(self, statement: Statement, *, mark: bool) -> ScriptOutcome:
        """Send statement on its own; ``mark``: recorded as running first, since it may
        finish on the server after a kill, before it is recorded done."""
        if mark:
            self._mark(self.progress.running(statement.index))
        ran = self.ctx.session.script(statement.text)
        if ran.error is None and not self.ctx.session.in_transaction:
            self._mark(self.progress.done(statement.index))
        return ran

    def _mark(self, progress: str) -> None:
        self.ctx.history.write(progress)


def units(step: Step, statements: Sequence[Statement]) -> list[list[Statement]]:
    """statements in the units they run in: each batched statement alone; in a migration
    that is otherwise transactional, the statements between them together, in one
    transaction each; in a no-transaction migration every statement alone."""
    found: list[list[Statement]] = []
    for statement in statements:
        together = step.source.transactional and statement.index not in step.batches
        if together and found and found[-1][-1].index not in step.batches:
            found[-1].append(statement)
        else:
            found.append([statement])
    return found


def span(sql: str, unit: Sequence[Statement]) -> str:
    """The text of sql from the first statement of unit to the end of its last."""
    starts = [0] + [i + 1 for i, c in enumerate(sql) if c == "\n"]
    first, last = unit[0], unit[-1]
    begin = sql.index(first.text, starts[first.line - 1])
    end = sql.index(last.text, starts[last.line - 1]) + len(last.text)
    return sql[begin:end]


def _group_failure(
    ran: ScriptOutcome, unit: Sequence[Statement], text: str, offset: int
) -> Failure:
    """Where a group's transaction failed: its statement (by result) and line (by position)."""
    assert ran.error is not None
    index, line = None, None
    if ran.failed_at is not None and 1 <= ran.failed_at <= len(unit):
        index, line = unit[ran.failed_at - 1].index, unit[ran.failed_at - 1].line
    position = ran.error.position
    if position is not None and 0 < position - offset <= len(text):
        line = unit[0].line + text.count("\n", 0, position - offset - 1)
    return Failure(ran.error, index, line)


def statement_failure(ran: ScriptOutcome, statement: Statement, offset: int) -> Failure:
    assert ran.error is not None
    line = statement.line
    position = ran.error.position
    if position is not None and 0 < position - offset <= len(statement.text):
        line += statement.text.count("\n", 0, position - offset - 1)
    return Failure(ran.error, statement.index, line)


def drop_invalid_indexes(ctx: RunContext, statements: Sequence[Statement]) -> None:
    """Drop the INVALID indexes a failed concurrent build of these statements left behind."""
    for name in ctx.catalog.invalid_indexes(statements):
        ctx.progress(f"dropping invalid index {name} left by an earlier failed build")
        dropped = ctx.session.script(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        if dropped.error is not None:
            ctx.progress(f"could not drop invalid index {name}: {dropped.error.message}")
