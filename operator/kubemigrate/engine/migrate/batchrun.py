"""A batched statement's run: batch after batch, each in its own short transaction together
with its checkpoint, until a batch changes no rows.

Each batch is ``BEGIN`` (with ``SET LOCAL synchronous_commit`` when the marker asks); the
statement with ``$1`` = the batch size and ``$2`` = the last key (bound by the server); the
checkpoint (batches, rows, last key, size) in the progress row, as the runner, and ``COMMIT``,
in one message: three round trips. A kill therefore leaves every batch either committed with its
checkpoint or not run at all, and the next run starts after the last committed one: no batch
is run twice, none skipped. The batch that changes nothing also records the statement done.

Between batches: the pause asked for (``pause=``), the adaptive size (``target=``), a wait while
a standby lags (``max_lag=``) and while the caller says paused (``spec.paused``). A batch that
hits lock_timeout (55P03) is retried with the migration's backoff, as any statement is.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kubemigrate.engine.migrate.batchprogress import BatchProgress, BatchState, Meter
from kubemigrate.engine.migrate.batchspec import BatchedStatement
from kubemigrate.engine.migrate.history import AS_RUNNER, AS_RUNNER_STATEMENTS, BatchCheckpoint
from kubemigrate.engine.migrate.progress import ProgressSql
from kubemigrate.engine.migrate.step import LOCK_NOT_AVAILABLE, Failure, RunContext, Step
from kubemigrate.engine.pg.session import ScriptOutcome, SqlError

if TYPE_CHECKING:  # the parser is loaded only when there is SQL to run
    from kubemigrate.engine.migrate.statements import Statement

_WRAP_HEAD = "WITH kubemigrate_batch(k) AS (\n"
_WRAP_TAIL = (
    "\n) SELECT count(*), (SELECT b.k::text AS largest FROM kubemigrate_batch b"
    " ORDER BY b.k DESC LIMIT 1) FROM kubemigrate_batch"
)
"""A statement returning its key runs inside this: the server counts the rows and finds the
largest key in the key's own type (ordered by the key, not its text), and one row comes
back, not one per row changed."""

_POLL = 1.0
"""Seconds between looks while paused or waiting for replication lag."""

_LAG = (
    "SELECT coalesce(max(extract(epoch FROM greatest(write_lag, flush_lag, replay_lag))), 0)"
    " FROM pg_stat_replication"
)


@dataclass(frozen=True)
class BatchOutcome:
    """What a batched statement's run did."""

    rows: int
    """Rows changed in this run."""
    batches: int
    """Batches run in this run (not those of earlier runs)."""
    retries: int = 0
    failure: Failure | None = None
    blocked_by: str | None = None


class BatchLoop:
    """One batched statement of one step, run from its checkpoint."""

    def __init__(
        self,
        ctx: RunContext,
        step: Step,
        statement: Statement,
        batched: BatchedStatement,
        *,
        progress: ProgressSql | None,
        checkpoint: BatchCheckpoint | None,
    ) -> None:
        """``progress``: the step's progress row (None for a dry run, which records
        nothing); ``checkpoint``: where an earlier run of the statement stopped."""
        self.ctx = ctx
        self.step = step
        self.statement = statement
        self.spec = batched.spec
        self.batched = batched
        self.progress = progress
        done = checkpoint
        self.batches = done.batches if done else 0
        self.rows = done.rows if done else 0
        self.last_key = done.last_key if done else None
        self.size = min(max((done.size if done and done.size else self.spec.size), 1), 10**7)
        self.resumed = self.batches
        self.query = (
            _WRAP_HEAD + statement.text + _WRAP_TAIL if batched.returning else statement.text
        )
        self.offset = len(_WRAP_HEAD) if batched.returning else 0
        commit = self.spec.synchronous_commit
        self.begin = "BEGIN" + (f";SET LOCAL synchronous_commit TO {commit}" if commit else "")
        """Opens a batch's transaction (the marker's ``synchronous_commit=``, a value
        from a fixed list, for this transaction alone)."""
        self.meter = Meter(self.rows, None)
        self.estimate_source: str | None = None
        self.retries = 0
        self.blocked_by: str | None = None

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> BatchOutcome:
        self._estimate()
        where = f"{self.step.kind} {self.step.version}, statement {self.statement.index}"
        if self.resumed:
            self.ctx.progress(
                f"{where}: resuming after batch {self.batches} ({self.rows} rows done)"
            )
        last_seconds: float | None = None
        while True:
            self._wait()
            ran = self._batch()
            if isinstance(ran, Failure):
                return self._outcome(ran)
            rows, seconds = ran
            last_seconds = seconds
            if rows == 0:
                self._report("done", last_seconds)
                return self._outcome(None)
            self._report("running", last_seconds)
            self._adapt(seconds)
            if self.spec.pause > 0:
                time.sleep(self.spec.pause)

    def _outcome(self, failure: Failure | None) -> BatchOutcome:
        return BatchOutcome(
            self.meter.rows_now,
            self.batches - self.resumed,
            self.retries,
            failure,
            self.blocked_by,
        )

    def _adapt(self, seconds: float) -> None:
        """Aim the next batch at the target duration: at most double, at least half."""
        target = self.spec.target
        if target is None or seconds <= 0:
            return
        factor = min(2.0, max(0.5, target / seconds))
        self.size = min(self.spec.ceiling, max(self.spec.floor, round(self.size * factor)))

    def first_batch(self) -> tuple[int, int | None, Failure | None]:
        """A dry run's look: the estimate, then the first batch alone, in the caller's
        transaction (which it rolls back): (rows, estimated rows in all, failure)."""
        self._estimate()
        ran = self.ctx.session.run_params(self.query, self._params(self.size))
        if ran.error is not None:
            return 0, self.meter.total, self._failure(ran, self.offset)
        rows, _ = self._counted(ran)
        return rows, self.meter.total, None

    # -- one batch -----------------------------------------------------------------------------

    def _params(self, size: int | None) -> list[str | None]:
        first = None if size is None else str(size)
        return [first, self.last_key] if self.batched.keyset else [first]

    def _batch(self) -> tuple[int, float] | Failure:
        """Run the next batch, retrying on lock_timeout: (rows, seconds) or its failure."""
        policy = self.ctx.settings.retry
        tries = 1
        self.ctx.activity.doing = (
            f"{self.step.kind} of migration {self.step.version}, statement"
            f" {self.statement.index} (line {self.statement.line}), batch {self.batches + 1}"
        )
        while True:
            clock = time.perf_counter()
            result = self._transaction()
            if not isinstance(result, Failure):
                return result, time.perf_counter() - clock
            if result.error.sqlstate != LOCK_NOT_AVAILABLE:
                return result
            self.blocked_by = self.ctx.activity.blockers() or self.blocked_by
            if tries >= max(1, policy.attempts):
                return replace(result, blocked_by=self.blocked_by)
            delay = policy.delay(tries)
            held = f", held by {self.blocked_by}" if self.blocked_by else ""
            self.ctx.progress(
                f"{self.step.kind} {self.step.version}, statement {self.statement.index}, batch"
                f" {self.batches + 1}: lock not available{held}; retrying in {delay:.2f}s"
            )
            time.sleep(delay)
            tries += 1
            self.retries += 1

    def _transaction(self) -> int | Failure:
        """One batch and its checkpoint in one transaction: the rows it changed. Three round
        trips: ``BEGIN`` (and the batch's settings), the statement, then the role reset, the
        checkpoint and ``COMMIT`` in one message."""
        session = self.ctx.session
        opened = session.script(self.begin)
        if opened.error is not None:
            session.rollback_if_open()
            return self._failure(opened, 0)
        ran = session.run_params(self.query, self._params(self.size))
        if ran.error is not None:
            session.rollback_if_open()
            return self._failure(ran, self.offset)
        rows, key = self._counted(ran)
        if rows > 0 and self.batched.keyset and key is not None and key == self.last_key:
            session.rollback_if_open()
            return Failure(
                SqlError(
                    None,
                    "the batch's largest key did not advance past :last_key; the statement"
                    " must select rows after it (WHERE key > :last_key ORDER BY key)",
                ),
                self.statement.index,
                self.statement.line,
            )
        batches = self.batches + 1 if rows else self.batches
        last_key = key if key is not None else self.last_key
        commit, at = self._commit_sql(rows == 0, batches, self.rows + rows, last_key)
        written = session.script(commit)
        if written.error is not None:
            session.rollback_if_open()
            return self._commit_failure(written, at)
        self.batches, self.last_key = batches, last_key
        self.rows += rows
        self.meter.rows_now += rows
        return rows

    def _commit_sql(
        self, finished: bool, batches: int, rows: int, last_key: str | None
    ) -> tuple[str, int]:
        """The end of a batch's transaction as one message: the role reset (the checkpoint is
        written as the runner), the statement recorded done after a batch that changed
        nothing, the checkpoint, ``COMMIT``; and the index of ``COMMIT`` among them."""
        progress = self.progress
        assert progress is not None
        parts = [AS_RUNNER]
        if finished:
            parts.append(progress.done(self.statement.index))
        parts += [progress.checkpoint(self.statement.index, batches, rows, last_key, self.size)]
        parts.append("COMMIT")
        return ";".join(parts), AS_RUNNER_STATEMENTS + len(parts) - 2

    def _commit_failure(self, written: ScriptOutcome, commit_at: int) -> Failure:
        error = written.error
        assert error is not None
        if written.failed_at == commit_at:  # a deferred constraint, a serialization failure
            return Failure(error, self.statement.index, self.statement.line)
        message = f"cannot write the batch's checkpoint: {error.message}"
        return Failure(SqlError(error.sqlstate, message), self.statement.index)

    def _counted(self, ran: ScriptOutcome) -> tuple[int, str | None]:
        """(rows changed, largest key returned) of a batch's result."""
        if not self.batched.returning:
            return max(ran.results[-1].command_tuples or 0, 0), None
        count = ran.value(0, 0, 0)
        return int(count or 0), ran.value(0, 0, 1)

    def _failure(self, ran: ScriptOutcome, offset: int) -> Failure:
        assert ran.error is not None
        line = self.statement.line
        position = ran.error.position
        text = self.statement.text
        if position is not None and 0 < position - offset <= len(text):
            line += text.count("\n", 0, position - offset - 1)
        return Failure(ran.error, self.statement.index, line)

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self) -> None:
        """Wait while the caller says paused, and while a standby lags more than allowed."""
        paused = self.ctx.paused
        reported = False
        while paused is not None and paused():
            if not reported:
                self.ctx.progress(
                    f"{self.step.kind} {self.step.version}: paused after batch {self.batches}"
                )
            self._report("paused", None)
            reported = True
            time.sleep(_POLL)
        if self.spec.max_lag is None:
            return
        while (lag := self._lag()) > self.spec.max_lag:
            detail = f"replication lag {lag:.1f}s over max_lag {self.spec.max_lag:g}s"
            self._report("lagging", None, detail)
            time.sleep(_POLL)

    def _lag(self) -> float:
        """The largest replication lag of the standbys, in seconds (0 without standbys, or
        when the role may not read the lag columns)."""
        ran = self.ctx.session.script(_LAG)
        if ran.error is not None:
            return 0.0
        return float(ran.value(0) or 0)

    # -- estimate and reports ------------------------------------------------------------------

    def _estimate(self) -> None:
        """Rows left to do: the marker's ``estimate=`` query, else the planner's."""
        left, source = None, None
        if self.spec.estimate is not None:
            left, source = self._query_estimate(self.spec.estimate), "query"
        if left is None:
            left, source = self._planner_estimate(), "planner"
        self.meter.estimate_left = left
        self.estimate_source = source if left is not None else None

    def _query_estimate(self, query: str) -> int | None:
        ran = self._look(query, None)
        value = ran.value(len(ran.results) - 1) if ran.error is None and ran.results else None
        try:
            return max(0, int(float(value or "")))
        except ValueError:
            why = ran.error.message if ran.error else "it returned no number"
            self.ctx.progress(f"the estimate query failed ({why}); using the planner's")
            return None

    def _planner_estimate(self) -> int | None:
        """The planner's row count of the statement without its LIMIT (``$1`` NULL): of the
        rows it changes, or, when larger, of the rows its (now unlimited) ``LIMIT
        :batch_size`` subquery yields (``= ANY (ARRAY(...))`` hides that count from the
        rows changed)."""
        ran = self._look("EXPLAIN (FORMAT JSON) " + self.statement.text, self._params(None))
        if ran.error is not None or not ran.results:
            return None
        try:
            plan = json.loads(ran.value(0) or "[]")[0]["Plan"]
            return max(0, _plan_rows(plan))
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def _look(self, text: str, params: list[str | None] | None) -> ScriptOutcome:
        """Run a query that changes nothing; inside a transaction (a dry run's) in a
        savepoint, so that its failure loses nothing."""
        session = self.ctx.session
        inside = session.in_transaction
        if inside:
            session.script("SAVEPOINT kubemigrate_estimate")
        ran = session.script(text) if params is None else session.run_params(text, params)
        if inside:
            session.script("ROLLBACK TO SAVEPOINT kubemigrate_estimate")
        else:
            session.rollback_if_open()
        return ran

    def _report(self, state: BatchState, seconds: float | None, detail: str | None = None) -> None:
        callback = self.ctx.on_batch
        if callback is None:
            return
        callback(
            BatchProgress(
                version=self.step.version,
                kind=self.step.kind,
                statement=self.statement.index,
                line=self.statement.line,
                state=state,
                batches=self.batches,
                rows=self.rows,
                batch_size=self.size,
                estimate=self.meter.total if state != "done" else self.rows,
                estimate_source=self.estimate_source,
                rate=self.meter.rate(),
                eta_seconds=self.meter.eta(done=state == "done"),
                last_batch_seconds=seconds,
                resumed_batches=self.resumed,
                detail=detail,
            )
        )


def _plan_rows(plan: dict[str, Any]) -> int:
    """Rows a plan changes (the child of its ModifyTable), or more: the rows under any Limit
    node (the batch's subquery, unlimited here)."""
    changed = plan["Plans"][0] if plan.get("Node Type") == "ModifyTable" else plan
    rows = int(changed["Plan Rows"])
    stack = [plan]
    while stack:
        node = stack.pop()
        children = node.get("Plans") or []
        if node.get("Node Type") == "Limit" and children:
            rows = max(rows, int(children[0]["Plan Rows"]))
        stack.extend(children)
    return rows
