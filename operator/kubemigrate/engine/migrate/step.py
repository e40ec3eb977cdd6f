"""What every way of running a migration shares: settings, the unit of work, error positions,
verification and the 55P03 retry policy.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from psycopg import pq

from kubemigrate.engine.migrate.activity import Activity
from kubemigrate.engine.migrate.catalog import Catalog, TableChanges
from kubemigrate.engine.migrate.history import History, HistoryRow
from kubemigrate.engine.migrate.results import Kind, MigrationResult, Origin, Status
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.pg.session import ScriptOutcome, Session, SqlError

if TYPE_CHECKING:  # the parser is loaded only when there is SQL to run
    from kubemigrate.engine.migrate.batchprogress import BatchCallback, PauseCheck
    from kubemigrate.engine.migrate.batchspec import BatchedStatement
    from kubemigrate.engine.migrate.statements import Statement

LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a transaction that hit lock_timeout: exponential backoff with jitter, capped."""

    attempts: int = 5
    first_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after the n-th failed attempt (1-based): "equal jitter"."""
        base = min(self.max_delay, self.first_delay * 2.0 ** (failed_attempt - 1))
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not secrecy


@dataclass(frozen=True)
class RunSettings:
    """Run-wide defaults a migration's own settings override."""

    lock_timeout: float | None = 2.0
    statement_timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class RunContext:
    """Everything one engine call shares: the connection, its helpers and who is running."""

    session: Session
    history: History
    catalog: Catalog
    settings: RunSettings
    run_id: uuid.UUID
    actor: str | None
    origin: Origin | None
    progress: Callable[[str], None]
    activity: Activity = field(default_factory=Activity)
    guard: Session | None = None
    """The guard lock's connection while the lock is held (see ``locking``): idle, for the
    engine's looks at the server while a migration runs."""
    on_batch: BatchCallback | None = None
    """Told of every batch of a batched statement (see ``batchprogress``)."""
    paused: PauseCheck | None = None
    """Asked before every batch: while it says True, the batched statement waits."""


@dataclass(frozen=True)
class Step:
    """One migration to run in one direction."""

    source: MigrationSource
    kind: Kind  # apply or rollback
    sql: str
    verify_sql: str | None = None
    statements: Sequence[Statement] | None = None
    """The statements of sql, or None when the parser rejected it (the server will say why)."""
    parse_error: str | None = None
    checksum: str = ""
    """The source's checksum, computed once (the source computes it on every access)."""
    key: tuple[int, ...] = ()
    batches: Mapping[int, BatchedStatement] = field(default_factory=dict)
    """The statements that run in batches, by index (see ``batchspec``)."""
    batch_error: str | None = None
    """Why its batch markers are malformed ("line 3: ..."): refused before anything runs."""

    @property
    def stepwise(self) -> bool:
        """Whether it runs statement by statement with a progress row, not in one
        transaction: a no-transaction migration, or one with a batched statement."""
        return not self.source.transactional or bool(self.batches)

    @classmethod
    def of(cls, source: MigrationSource, kind: Kind, server_version: int) -> Step:
        from kubemigrate.engine.migrate.batchspec import (  # noqa: PLC0415 - pglast only when needed
            MarkerError,
            attach,
            bind,
            has_batch_syntax,
            markers,
        )
        from kubemigrate.engine.migrate.statements import (  # noqa: PLC0415 - pglast only when needed
            ParseError,
            split_statements,
        )

        text = source.up_sql if kind != "rollback" else source.down_sql or ""
        bound, specs, batch_error = None, {}, None
        if has_batch_syntax(text):
            bound = bind(text)
            text = bound.sql
            try:
                specs = markers(text)
            except MarkerError as exc:
                batch_error = str(exc)
        try:
            statements: list[Statement] | None = split_statements(text, server_version)
            problem = None
        except ParseError as exc:
            statements, problem = None, str(exc)
        batches: dict[int, BatchedStatement] = {}
        if bound is not None and statements is not None and batch_error is None:
            try:
                batches = attach(statements, specs, bound)
            except MarkerError as exc:
                batch_error = str(exc)
        return cls(
            source,
            kind,
            text,
            source.verify_sql if kind != "rollback" else None,
            statements,
            problem,
            source.checksum,
            source.key,
            batches,
            batch_error,
        )

    @property
    def version(self) -> str:
        return self.source.version


def now() -> datetime:
    return datetime.now(UTC)


def local_settings(source: MigrationSource, settings: RunSettings, *, local: bool = True) -> str:
    """``SET [LOCAL]`` statements for the migration's timeouts, and its version as a setting
    (``kubemigrate.version``) that triggers or functions may read. Always at least one statement,
    so a syntax error (which stops a script before its first statement runs) is told apart."""
    scope = "LOCAL " if local else ""
    return "".join(
        f"SET {scope}{name} = '{value}';" for name, value in setting_values(source, settings)
    )


def setting_values(source: MigrationSource, settings: RunSettings) -> list[tuple[str, str]]:
    """(name, value) of the settings ``local_settings`` makes."""
    values = [("kubemigrate.version", source.version)]
    for name, value in (
        ("lock_timeout", _pick(source.lock_timeout, settings.lock_timeout)),
        ("statement_timeout", _pick(source.statement_timeout, settings.statement_timeout)),
    ):
        if value is not None:
            ms = 0 if value <= 0 else max(1, round(value * 1000))
            values.append((name, f"{ms}ms"))
    return values


def _pick(own: float | None, default: float | None) -> float | None:
    return own if own is not None else default


@dataclass(frozen=True)
class Failure:
    """Where and why a migration failed."""

    error: SqlError
    statement_index: int | None = None
    line: int | None = None
    lost_prepared: bool = False
    blocked_by: str | None = None
    """Who held the lock, for a lock_timeout (see ``activity.BlockerWatch``)."""

    @property
    def message(self) -> str:
        """The server's message, and for a lock_timeout who held the lock."""
        blocked = f"; blocked by {self.blocked_by}" if self.blocked_by else ""
        return self.error.message + blocked

    @property
    def retryable(self) -> bool:
        return self.error.sqlstate == LOCK_NOT_AVAILABLE


def locate(
    outcome: ScriptOutcome,
    sql: str,
    statements: Sequence[Statement] | None,
    *,
    offset: int,
    skipped_results: int,
) -> Failure:
    """The failing statement (1-based) and line of sql, which was sent after ``offset``
    characters and ``skipped_results`` statements of prefix."""
    assert outcome.error is not None
    error = outcome.error
    line = None
    if error.position is not None and offset < error.position <= offset + len(sql):
        line = sql.count("\n", 0, error.position - offset - 1) + 1
    index = None
    if outcome.failed_at is not None and outcome.failed_at >= skipped_results > 0:
        index = outcome.failed_at - skipped_results + 1
    elif statements is None and error.position is not None and line is not None:
        index = statement_number_at(sql, error.position - offset - 1)
    if statements:
        if index is None and line is not None:
            index = max((s.index for s in statements if s.line <= line), default=None)
        if line is None and index is not None and index <= len(statements):
            line = statements[index - 1].line
    return Failure(error, index, line)


def statement_number_at(sql: str, offset: int) -> int | None:
    """The 1-based number of the statement at character offset of sql, counting the
    semicolons before it; for SQL the parser rejects, where there are no statements."""
    from pglast import parser  # noqa: PLC0415 - loaded only when needed

    try:
        tokens = parser.scan(sql)
    except parser.ParseError:  # a lexical error: unterminated quote or comment
        return None
    number, empty = 1, True
    for token in tokens:
        if token.start >= offset:
            break
        if token.name == "ASCII_59":  # ";"
            number, empty = (number, True) if empty else (number + 1, True)
        else:
            empty = False
    return number


def verification_error(outcome: ScriptOutcome) -> str | None:
    """None if verification passed: no rows, or one row holding a single true value."""
    result = next(
        (r for r in reversed(outcome.results) if r.status == pq.ExecStatus.TUPLES_OK), None
    )
    if result is None or result.ntuples == 0:
        return None
    if result.ntuples == 1 and result.nfields == 1:
        raw = result.get_value(0, 0)
        if raw == b"t":
            return None
        value = {b"f": "false", None: "NULL"}.get(raw) or (raw or b"").decode(errors="replace")
        return f"the check returned {value[:80]}, not true"
    return (
        f"the check returned {result.ntuples} rows of {result.nfields} columns"
        " (expected no rows, or one true value)"
    )


def verify(session: Session, step: Step) -> Failure | None:
    """Run the step's verification SQL (inside its transaction, when it has one)."""
    if step.verify_sql is None:
        return None
    checked = session.script(step.verify_sql)
    if checked.error is not None:
        return Failure(
            SqlError(checked.error.sqlstate, f"verification failed: {checked.error.message}")
        )
    problem = verification_error(checked)
    return Failure(SqlError(None, f"verification failed: {problem}")) if problem else None


def rows_affected(outcome: ScriptOutcome, start: int = 0, stop: int | None = None) -> int:
    """Rows written by the statements from ``start`` on (to ``stop``); SELECT results do not
    count."""
    total = 0
    for result in outcome.results[start:stop]:
        tag = (result.command_status or b"").split(b" ", 1)[0]
        if tag in (b"INSERT", b"UPDATE", b"DELETE", b"MERGE", b"COPY") or (
            tag == b"SELECT" and result.status == pq.ExecStatus.COMMAND_OK
        ):
            total += max(result.command_tuples or 0, 0)
    return total


def history_row(
    ctx: RunContext,
    step: Step,
    status: Status,
    *,
    started_at: datetime,
    finished_at: datetime,
    duration: float,
    rows: int | None = None,
    failure: Failure | None = None,
    attempts: int = 1,
    tables: TableChanges | None = None,
    blocked_by: str | None = None,
) -> HistoryRow:
    tables = tables or TableChanges()
    return HistoryRow(
        run_id=ctx.run_id,
        version=step.version,
        description=step.source.description,
        checksum=step.checksum or step.source.checksum,
        kind=step.kind,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=round(duration * 1000, 3),
        rows_affected=rows,
        has_rollback=step.source.rollback_available,
        statement_index=failure.statement_index if failure else None,
        error_line=failure.line if failure else None,
        sqlstate=failure.error.sqlstate if failure else None,
        error=failure.message if failure else None,
        attempts=attempts,
        executed_by=ctx.actor,
        origin=ctx.origin,
        tables_created=tables.created,
        tables_altered=tables.altered,
        tables_dropped=tables.dropped,
        key=step.key,
        blocked_by=(failure.blocked_by if failure else None) or blocked_by,
    )


def result_of(row: HistoryRow, *, tables: TableChanges | None = None) -> MigrationResult:
    """The result a row records; ``tables`` when they were found after the row was made."""
    assert row.finished_at is not None
    tables = tables or TableChanges(row.tables_created, row.tables_altered, row.tables_dropped)
    return MigrationResult(
        version=row.version,
        description=row.description,
        kind=row.kind,
        status=row.status,
        checksum=row.checksum,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_seconds=(row.duration_ms or 0) / 1000,
        rows_affected=row.rows_affected or 0,
        tables_created=tables.created,
        tables_altered=tables.altered,
        tables_dropped=tables.dropped,
        sqlstate=row.sqlstate,
        error=row.error,
        statement_index=row.statement_index,
        line=row.error_line,
        attempts=row.attempts,
        blocked_by=row.blocked_by,
    )
