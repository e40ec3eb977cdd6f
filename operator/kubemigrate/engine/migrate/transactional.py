"""Migrations in one transaction each, the history row inside the same transaction.

For migrations that cannot travel in a batch (``batched.py``: rows affected, verification,
session settings, a full catalog diff), for retries, and for single migrations: one round
trip per migration in a run of them. A migration's statements go as one
simple query, ``BEGIN; SET LOCAL ...; <the migration>``; its history row and ``COMMIT``
(``EXECUTE <prepared INSERT>; COMMIT``, the INSERT reading the tables the transaction created
from the catalog) wait, and travel at the head of the next migration's query. Each statement
still has its own result, so row counts and the failing statement stay exact, and the waiting
commit is ours, so only a syntax error in the next migration (which stops the whole query
before anything runs, and so aborts the waiting transaction) needs care: the waiting migration
is then run again on its own. A FULL catalog diff, verification SQL, or the last migration of
a run take a round trip more.

On lock_timeout (SQLSTATE 55P03) the whole transaction is rolled back and retried with backoff;
on any other error it is rolled back, and a ``failed`` row is written in a short transaction of
its own, so the database is as before plus that row, and nothing blocks the next run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from kubemigrate.engine.migrate.catalog import DiffMode, TableChanges, diff_mode, named_tables
from kubemigrate.engine.migrate.history import AS_RUNNER, AS_RUNNER_STATEMENTS, HistoryRow
from kubemigrate.engine.migrate.results import MigrationResult
from kubemigrate.engine.migrate.step import (
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

_WHOLE_MESSAGE = frozenset({"42601", "22021", "22P05"})
"""Errors the server raises for a whole message before running any of it: a syntax error,
characters it cannot convert to the database's encoding."""


@dataclass(frozen=True)
class _Waiting:
    """A migration whose statements ran, in a transaction still open: the SQL that records
    and commits it (``statements`` of them), and what it will record."""

    step: Step
    row: HistoryRow
    finish: str
    statements: int
    returning: int | None
    """Which result of the finishing SQL returns the tables the catalog found, if one does."""
    deallocates: bool = False
    """The migration ran DEALLOCATE: the history's prepared INSERTs are gone after it."""


class TransactionalRunner:
    """Runs transactional steps on the run's session, carrying each commit to the next."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._waiting: _Waiting | None = None
        self._blocked: dict[str, str] = {}
        """Who was seen holding the locks each version waited for."""

    def run(self, step: Step, *, defer: bool = False, attempt: int = 1) -> list[MigrationResult]:
        """Run step, retrying on lock_timeout; ``attempt`` > 1 when tries were made already.
        Returns the results that became final: the waiting migration's, then step's, unless
        ``defer`` leaves step's commit waiting. A failure of the waiting migration ends the
        list: step was then not run."""
        ctx = self.ctx
        done: list[MigrationResult] = []
        while True:
            started_at, clock = now(), time.perf_counter()
            outcome = self._attempt(step, started_at, clock, attempt, done)
            if outcome is None:
                return done
            if isinstance(outcome, _Waiting):
                if defer:
                    self._waiting = outcome
                else:
                    done.append(self._finish(outcome))
                return done
            ctx.session.rollback_if_open()
            if outcome.lost_prepared and not ctx.history.prepared_again:
                ctx.history.prepare(again=True)
                continue
            if self.wait_to_retry(step, outcome, attempt):
                attempt += 1
                continue
            done.append(
                self.failed(step, outcome, started_at, time.perf_counter() - clock, attempt)
            )
            return done

    def wait_to_retry(self, step: Step, failure: Failure, attempt: int) -> bool:
        """After try ``attempt`` of step failed: False when it is not to be tried again,
        else True once the backoff has passed (lock_timeout only, a capped number of tries)."""
        policy = self.ctx.settings.retry
        if not failure.retryable or attempt >= max(1, policy.attempts):
            return False
        who = self.blocked_by(step)
        delay = policy.delay(attempt)
        self.ctx.progress(
            f"{step.kind} {step.version}: lock not available"
            f" ({failure.error.message})"
            + (f", held by {who}" if who else "")
            + f"; retrying in {delay:.2f}s"
            f" (attempt {attempt + 1} of {policy.attempts})"
        )
        time.sleep(delay)
        return True

    def blocked_by(self, step: Step) -> str | None:
        """Who step's session was seen waiting for, since it started."""
        seen = self.ctx.activity.blockers()
        if seen is not None:
            self._blocked[step.version] = seen
        return self._blocked.get(step.version)

    def flush(self) -> list[MigrationResult]:
        """Commit the waiting migration, if there is one; its result."""
        waiting, self._waiting = self._waiting, None
        return [self._finish(waiting)] if waiting is not None else []

    # -- internals -----------------------------------------------------------------------------

    def _attempt(
        self,
        step: Step,
        started_at: datetime,
        clock: float,
        attempt: int,
        done: list[MigrationResult],
    ) -> _Waiting | Failure | None:
        """One try of step: waiting for its commit, its failure, or None when the waiting
        migration before it failed (in ``done``) and step was not run."""
        ctx, session = self.ctx, self.ctx.session
        mode = diff_mode(step.statements)
        carried, committed = self._take_waiting(step, mode, done)
        if not committed:
            return None
        ctx.history.prepare()  # again, after a migration that ran DEALLOCATE
        settings = "BEGIN;" + local_settings(step.source, ctx.settings)
        before = None
        if mode is DiffMode.FULL:
            opened = session.script("BEGIN")
            if opened.error is not None:
                return Failure(opened.error)
            before = ctx.catalog.snapshot()
            settings = settings.removeprefix("BEGIN;")
        head = carried.finish + ";\n" if carried is not None else ""
        prefix = head + settings + "\n"
        skipped = (carried.statements if carried is not None else 0) + settings.count(";")

        ran = session.script(prefix + step.sql)
        if carried is not None:
            after = self._after_head(carried, ran, len(head), done)
            if after == "stop":
                return None
            if after == "again":
                return self._attempt(step, started_at, clock, attempt, done)
        if ran.error is not None:
            return locate(
                ran, step.sql, step.statements, offset=len(prefix), skipped_results=skipped
            )
        rows = rows_affected(ran, skipped)

        failure = verify(session, step)
        if failure is not None:
            return failure

        tables = TableChanges()
        if before is not None:
            tables = ctx.catalog.diff(before, ctx.catalog.snapshot())
        row = history_row(
            ctx,
            step,
            "success",
            started_at=started_at,
            finished_at=now(),
            duration=time.perf_counter() - clock,
            rows=rows,
            attempts=attempt,
            tables=tables,
            blocked_by=self._blocked.get(step.version) if attempt > 1 else None,
        )
        return self._commit_later(step, row, mode)

    def _take_waiting(
        self, step: Step, mode: DiffMode, done: list[MigrationResult]
    ) -> tuple[_Waiting | None, bool]:
        """The waiting migration, to travel at the head of step's message; or, when it cannot
        travel with step, None after committing it now (False if that commit failed)."""
        carried, self._waiting = self._waiting, None
        if carried is None or not (
            mode is DiffMode.FULL or step.statements is None or carried.deallocates
        ):
            return carried, True
        done.append(self._finish(carried))
        return None, done[-1].ok

    def _after_head(
        self, carried: _Waiting, ran: ScriptOutcome, head_length: int, done: list[MigrationResult]
    ) -> Literal["go", "again", "stop"]:
        """Settle the waiting migration that travelled at the head of ran (its result goes in
        done): "go" on with step's outcome, run step "again" (it did not run), or "stop"."""
        settled = self._settle(carried, ran, head_length)
        if settled is None:
            # A syntax error in step stopped the whole query before the waiting commit ran,
            # and aborted its transaction: run the waiting migration again alone.
            self.ctx.session.rollback_if_open()
            done.extend(self.run(carried.step))
            return "again" if done[-1].ok else "stop"
        done.append(settled)
        if not settled.ok:
            return "stop"
        if ran.error is not None and (ran.failed_at or 0) < carried.statements:
            return "again"  # the head failed and was recovered by running it again
        return "go"

    def _commit_later(self, step: Step, row: HistoryRow, mode: DiffMode) -> _Waiting:
        """step ran: its history INSERT and COMMIT, to travel at the head of the next message."""
        named = mode is DiffMode.NAMED and step.statements is not None
        deallocates = step.statements is None or any(
            s.command == "DEALLOCATE" for s in step.statements
        )
        returning = None
        if named:
            assert step.statements is not None
            insert, count = self.ctx.history.insert_named_sql(row, named_tables(step.statements))
            returning = count - 1
        else:
            insert = AS_RUNNER + ";" + self.ctx.history.insert_sql(row, prepared=not deallocates)
            count = AS_RUNNER_STATEMENTS + 1
        # The session's state back to the run's, after the COMMIT: before the next BEGIN,
        # which takes settings such as default_transaction_read_only.
        session = self.ctx.session
        finish = f"{insert};\nCOMMIT;{session.reset_sql}"
        return _Waiting(
            step, row, finish, count + 1 + session.reset_statements, returning, deallocates
        )

    def _settle(
        self, carried: _Waiting, ran: ScriptOutcome, head_length: int
    ) -> MigrationResult | None:
        """The waiting migration's result from the head of ran, or None when nothing of ran
        executed: a syntax error after the head, or text the server could not convert to the
        database's encoding (the whole message is refused before any of it runs)."""
        error = ran.error
        if error is not None and (ran.failed_at or 0) < carried.statements:
            if ran.failed_at == 0 and (
                error.sqlstate in _WHOLE_MESSAGE
                or (error.position is not None and error.position > head_length)
            ):
                return None
            return self._commit_failed(carried, ran)
        return self._committed(carried, ran)

    def _finish(self, waiting: _Waiting) -> MigrationResult:
        """Send the waiting migration's INSERT and COMMIT on their own; its result."""
        ran = self.ctx.session.script(waiting.finish)
        if ran.error is not None:
            return self._commit_failed(waiting, ran)
        return self._committed(waiting, ran)

    def _committed(self, waiting: _Waiting, ran: ScriptOutcome) -> MigrationResult:
        if waiting.deallocates:
            self.ctx.history.prepared = False
        if waiting.returning is None:
            return result_of(waiting.row)
        created, altered, dropped = json.loads(ran.value(waiting.returning) or "[[], [], []]")[:3]
        return result_of(
            waiting.row, tables=TableChanges(tuple(created), tuple(altered), tuple(dropped))
        )

    def _commit_failed(self, waiting: _Waiting, ran: ScriptOutcome) -> MigrationResult:
        """The INSERT or the COMMIT failed (a deferred constraint, a serialization failure,
        the prepared INSERT gone after DEALLOCATE ALL): the migration was rolled back."""
        assert ran.error is not None
        self.ctx.session.rollback_if_open()
        if waiting.deallocates:
            self.ctx.history.prepared = False
        if ran.error.sqlstate == "26000" and not self.ctx.history.prepared_again:
            self.ctx.history.prepare(again=True)
            return self.run(waiting.step)[-1]
        row, failure = waiting.row, Failure(ran.error)
        if self.wait_to_retry(waiting.step, failure, row.attempts):
            # lock_timeout in the history INSERT (a lock on the history): the whole
            # transaction again, as for one in the migration's own statements.
            return self.run(waiting.step, attempt=row.attempts + 1)[-1]
        return self.failed(
            waiting.step, failure, row.started_at, (row.duration_ms or 0) / 1000, row.attempts
        )

    def failed(
        self, step: Step, failure: Failure, started_at: datetime, duration: float, attempts: int
    ) -> MigrationResult:
        """Record step's failure in a short transaction of its own; its result."""
        if failure.retryable:
            failure = replace(failure, blocked_by=self.blocked_by(step))
        row = history_row(
            self.ctx,
            step,
            "failed",
            started_at=started_at,
            finished_at=now(),
            duration=duration,
            failure=failure,
            attempts=attempts,
        )
        self.ctx.history.append(row)
        return result_of(row)
