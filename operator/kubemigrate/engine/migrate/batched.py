"""Runs of simple migrations sent many to a message, so that the server never waits for us.

A migration qualifies when its history row can be written before its results are seen: its
statements cannot report rows (CREATE TABLE, ALTER TABLE, CREATE INDEX, ...: zero rows
affected), the tables it changes are found by the catalog query inside the history INSERT, and
its times are the server's clock. A batch is one simple query holding, for each migration,
``BEGIN; <settings>; <migration>; <history INSERT>; COMMIT``. PostgreSQL runs a message's
statements in order and stops at the first error, so a failure leaves the migrations before it
committed and those after it not run, exactly as running them one at a time would; each still
commits (and syncs its WAL) on its own. While the server runs one batch, the next is prepared
and the results of the last are reported: the client's work overlaps the server's commits.

Batches start small (the first one is prepared while nothing runs) and grow. After a failure,
the committed migrations are reported, the failing one is recorded (lock_timeout: retried on
its own), and nothing after it runs. A syntax error the server finds in any migration of a
batch stops the whole message before its first statement; the batch is then run one migration
at a time, so that the ones before it are applied and the error is located.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg

from kubemigrate.engine.migrate.catalog import (
    DiffMode,
    TableChanges,
    created_tables,
    diff_mode,
    named_tables,
)
from kubemigrate.engine.migrate.history import AS_RUNNER, START_CLOCK, HistoryRow
from kubemigrate.engine.migrate.results import MigrationResult
from kubemigrate.engine.migrate.step import (
    Failure,
    RunContext,
    Step,
    history_row,
    locate,
    now,
    result_of,
    setting_values,
)
from kubemigrate.engine.migrate.transactional import TransactionalRunner
from kubemigrate.engine.pg.clock import from_microseconds, microseconds_sql
from kubemigrate.engine.pg.literals import quote
from kubemigrate.engine.pg.session import ScriptOutcome

MIN_SERVER = 130000
"""From PostgreSQL 13, statement_timeout applies to each statement of a message, not the whole."""

FIRST_BATCH = 4
MAX_BATCH = 64
MAX_BATCH_CHARS = 512 * 1024

_ROWLESS = frozenset(
    {
        "CREATE TABLE",
        "ALTER TABLE",
        "CREATE INDEX",
        "COMMENT",
        "GRANT",
        "REVOKE",
        "CREATE VIEW",
        "CREATE FUNCTION",
        "CREATE PROCEDURE",
        "CREATE SEQUENCE",
        "ALTER SEQUENCE",
        "CREATE TYPE",
        "CREATE DOMAIN",
        "CREATE TRIGGER",
        "CREATE RULE",
        "CREATE ROLE",
        "ALTER ROLE",
        "CREATE POLICY",
        "ALTER DEFAULT PRIVILEGES",
        "CREATE STATS",
        "LOCK TABLE",
        "ANALYZE",
        "REFRESH MATERIALIZED VIEW",
        "CREATE FOREIGN TABLE",
        "ALTER FOREIGN TABLE",
        "ALTER COLUMN",
        "ALTER CONSTRAINT",
        "ALTER INDEX",
        "ALTER VIEW",
        "ALTER MATERIALIZED VIEW",
        "ALTER TYPE",
    }
)
"""Commands whose result never carries a row count (INSERT, UPDATE, DELETE, MERGE, COPY and
CREATE TABLE AS do), so a migration of them affects zero rows whatever happens. SET,
DEALLOCATE and the rest are left out: a migration with them runs on its own."""

_COMMIT = b"COMMIT"


def batchable(step: Step) -> bool:
    """Whether everything step's history row records is known before its results are."""
    return (
        step.source.transactional
        and not step.batches
        and step.verify_sql is None
        and step.statements is not None
        and all(s.command in _ROWLESS for s in step.statements)
        and diff_mode(step.statements) is not DiffMode.FULL
    )


@dataclass(frozen=True)
class _Entry:
    """One migration's part of a batch."""

    step: Step
    row: HistoryRow
    """What it records; its times are placeholders (the server's clock fills them in)."""
    text: str
    sql_offset: int
    """Where the migration's SQL starts in text."""
    prefix: int
    """Statements before the migration's own: BEGIN, the clock, the settings."""


@dataclass(frozen=True)
class _Batch:
    entries: tuple[_Entry, ...]
    text: str
    offsets: tuple[int, ...]
    """Where each entry's text starts in text."""


class BatchRunner:
    """Runs batchable steps in batches on the run's session."""

    def __init__(self, ctx: RunContext, single: TransactionalRunner) -> None:
        self.ctx = ctx
        self.single = single
        """Runs a migration on its own: retries after lock_timeout, and syntax errors."""

    def run(self, steps: Sequence[Step]) -> Generator[MigrationResult, None, None]:
        """Each step's result in order, as soon as it is known; none after a failure. Closed
        early (the caller failed on a result), it cancels the batch still running."""
        self.ctx.history.prepare_run(self._row(steps[0]))
        queue = deque(steps)
        size = FIRST_BATCH
        flying: _Batch | None = None
        try:
            while queue or flying is not None:
                if flying is None:
                    flying = self._send(self._take(queue, size))
                size = min(size * 2, MAX_BATCH)
                following = self._take(queue, size) if queue else None
                ran = self.ctx.session.receive()
                if ran.error is None:
                    done = self._committed(flying, ran)
                    flying = self._send(following) if following is not None else None
                    yield from done
                    continue
                if following is not None:
                    queue.extendleft(reversed([e.step for e in following.entries]))
                landed = flying
                flying = None
                results, rest = self._recover(landed, ran)
                yield from results
                if not results or not results[-1].ok:
                    return
                queue.extendleft(reversed(rest))
                size = FIRST_BATCH
        finally:
            if flying is not None:
                self._abandon()

    # -- internals -----------------------------------------------------------------------------

    def _take(self, queue: deque[Step], size: int) -> _Batch:
        entries: list[_Entry] = []
        offsets: list[int] = []
        parts: list[str] = []
        length = 0
        while queue and len(entries) < size and length < MAX_BATCH_CHARS:
            entry = self._entry(queue.popleft())
            entries.append(entry)
            offsets.append(length)
            parts.append(entry.text)
            length += len(entry.text)
        return _Batch(tuple(entries), "".join(parts), tuple(offsets))

    def _send(self, batch: _Batch) -> _Batch:
        first, last = batch.entries[0].step, batch.entries[-1].step
        self.ctx.progress(
            f"{first.kind} {first.version}..{last.version}:"
            f" {len(batch.entries)} migration(s) in one message"
        )
        self.ctx.activity.doing = (
            f"{first.kind} of migrations {first.version} to"
            f" {last.version} (sent together; each commits on its own)"
        )
        self.ctx.session.send(batch.text)
        return batch

    def _abandon(self) -> None:
        """Stop the batch the server is running: cancel it and roll back the migration it was
        in (those it committed stay, each with its row), so that nothing more is applied."""
        session = self.ctx.session
        try:
            session.cancel()
            session.receive()
            session.rollback_if_open()
        except psycopg.Error:
            pass  # the connection is gone: the server rolls back and stops by itself

    def _entry(self, step: Step) -> _Entry:
        ctx = self.ctx
        assert step.statements is not None
        settings = setting_values(step.source, ctx.settings)
        head = (
            f"BEGIN;{START_CLOCK};"
            + "".join(f"SET LOCAL {name} = {quote(value)};" for name, value in settings)
            + "\n"
        )
        row = self._row(step)
        created = created_tables(step.statements, ctx.history.schema)
        if created is None and diff_mode(step.statements) is DiffMode.NAMED:
            insert, _ = ctx.history.insert_named_sql(
                row, named_tables(step.statements), server_times=True
            )
        else:
            insert = ctx.history.insert_run_sql(row, created or "'{}'::text[]")
        # The newline ends a trailing "--" comment; an empty statement (";;") has no result.
        # After the COMMIT, the session's state back to the run's (see Session.reset_sql).
        text = f"{head}{step.sql}\n;{AS_RUNNER};{insert};COMMIT;{ctx.session.reset_sql};\n"
        return _Entry(step, row, text, len(head), 2 + len(settings))

    def _row(self, step: Step) -> HistoryRow:
        """step's success row; its times are placeholders for the server's clock."""
        placeholder = now()
        return history_row(
            self.ctx,
            step,
            "success",
            started_at=placeholder,
            finished_at=placeholder,
            duration=0.0,
            rows=0,
        )

    def _committed(self, batch: _Batch, ran: ScriptOutcome) -> list[MigrationResult]:
        """The results of the migrations of batch that committed: those before a failure."""
        done = []
        commits = iter(_commits(ran))
        for entry, commit in zip(batch.entries, commits, strict=False):
            done.append(_result(entry.row, ran.value(commit - 1)))
        if ran.error is None and len(done) != len(batch.entries):
            raise AssertionError(f"{len(batch.entries)} migrations sent, {len(done)} committed")
        return done

    def _recover(
        self, batch: _Batch, ran: ScriptOutcome
    ) -> tuple[list[MigrationResult], list[Step]]:
        """After a failure in batch: the results of the migrations before it and of the
        failing one (recorded, or retried on its own), and the steps still to run."""
        assert ran.error is not None and ran.failed_at is not None
        session, single = self.ctx.session, self.single
        done = self._committed(batch, ran)
        session.rollback_if_open()
        steps = [e.step for e in batch.entries]
        if not done and ran.failed_at == 0:
            # Nothing ran: a syntax error the server found before the first statement.
            for step in steps:
                done.extend(single.run(step))
                if not done[-1].ok:
                    break
            return done, []
        index = len(done)
        entry = batch.entries[index]
        begin = _begin_of(ran, index, session.reset_statements)
        failure = _failure(entry, ran, begin, batch.offsets[index])
        if single.wait_to_retry(entry.step, failure, 1):
            done.extend(single.run(entry.step, attempt=2))
            return done, steps[index + 1 :]
        # The server's clock for both ends, as for the migrations that succeeded.
        clock = session.execute(f"SELECT {microseconds_sql('clock_timestamp()')}")[0][0]
        finished_at = from_microseconds(clock) or now()
        started_at = _started(ran, begin + 1) or finished_at
        done.append(
            single.failed(
                entry.step,
                failure,
                started_at,
                max(0.0, (finished_at - started_at).total_seconds()),
                1,
            )
        )
        return done, []


def _begin_of(ran: ScriptOutcome, committed: int, resets: int) -> int:
    """Where the results of the migration after the first ``committed`` ones begin: after
    the last one's COMMIT and ``resets`` statements."""
    if not committed:
        return 0
    return _commits(ran)[committed - 1] + 1 + resets


def _commits(ran: ScriptOutcome) -> list[int]:
    """Where the migrations' COMMITs are among ran's results: right after their history
    INSERTs (the session reset after each is a transaction of its own, with a COMMIT too)."""
    return [
        i
        for i, r in enumerate(ran.results)
        if r.command_status == _COMMIT
        and i > 0
        and (ran.results[i - 1].command_status or b"").startswith(b"INSERT")
    ]


def _failure(entry: _Entry, ran: ScriptOutcome, begin: int, offset: int) -> Failure:
    """Where in entry's migration ran failed; unlocated when it was not in its statements
    (the settings, or the history INSERT and COMMIT: a deferred constraint, say)."""
    assert ran.error is not None and ran.failed_at is not None and entry.step.statements is not None
    within = ran.failed_at - begin - entry.prefix
    if not 0 <= within < len(entry.step.statements):
        return Failure(ran.error)
    own = ScriptOutcome(
        ran.results[begin : ran.failed_at], ran.error, ran.failed_at - begin, ran.encoding
    )
    return locate(
        own,
        entry.step.sql,
        entry.step.statements,
        offset=offset + entry.sql_offset,
        skipped_results=entry.prefix,
    )


def _started(ran: ScriptOutcome, clock: int) -> datetime | None:
    """The server's clock when the failing migration began, if its clock statement (result
    ``clock``) ran."""
    assert ran.failed_at is not None
    return from_microseconds(ran.value(clock)) if ran.failed_at > clock else None


def _result(row: HistoryRow, returned: str | None) -> MigrationResult:
    """row's result with what its INSERT returned: the tables, and the server's times."""
    created, altered, dropped, started, finished, duration_ms = json.loads(returned or "null")
    timed = replace(
        row,
        started_at=from_microseconds(started) or row.started_at,
        finished_at=from_microseconds(finished),
        duration_ms=duration_ms,
    )
    return result_of(timed, tables=TableChanges(tuple(created), tuple(altered), tuple(dropped)))
