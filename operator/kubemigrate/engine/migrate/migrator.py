"""``Migrator``: the public face of the migration engine, used by the CLI and the operator.

Every call opens one connection, and calls that change anything take the database's migration
lock on it first, create the history if needed, read the history's state in one query, check
every applied checksum against the given sources, and only then run anything. Read-only calls
(``status``, ``validate``) take no lock and never create the history.
"""

from __future__ import annotations

import getpass
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass

import psycopg

from kubemigrate.engine.errors import (
    DriftDetected,
    EngineError,
    InvalidSources,
    NoRollbackSql,
    OutOfOrder,
    TransactionForbidden,
)
from kubemigrate.engine.migrate import planning
from kubemigrate.engine.migrate.batched import MIN_SERVER, BatchRunner, batchable
from kubemigrate.engine.migrate.catalog import Catalog
from kubemigrate.engine.migrate.dryrun import dry_run as run_dry_run
from kubemigrate.engine.migrate.history import History
from kubemigrate.engine.migrate.locking import AdvisoryLock, lock_key
from kubemigrate.engine.migrate.nontransactional import run_non_transactional
from kubemigrate.engine.migrate.recorded import last_apply
from kubemigrate.engine.migrate.results import (
    AppliedRun,
    Kind,
    MigrationResult,
    Origin,
    RunReport,
    ValidationReport,
    VersionState,
)
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.step import (
    RetryPolicy,
    RunContext,
    RunSettings,
    Step,
    history_row,
    now,
    result_of,
)
from kubemigrate.engine.migrate.transactional import TransactionalRunner
from kubemigrate.engine.pg.redact import redact
from kubemigrate.engine.pg.session import Session, one_line
from kubemigrate.engine.pg.target import connection_failed, describe

ResultCallback = Callable[[MigrationResult], None]
_COPY_STDIO = re.compile(r"\b(stdin|stdout)\b", re.IGNORECASE)
_IDENTIFIER_MAX = 63


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass
class _Plan:
    records: planning.Records
    sources: planning.Sources


class Migrator:
    """Applies, reverts, checks and reports migrations on one PostgreSQL database."""

    def __init__(
        self,
        database_url: str,
        *,
        history_schema: str = "kubemigrate",
        application_name: str = "kubemigrate",
        lock_wait_seconds: float = 60.0,
        default_lock_timeout: float | None = 2.0,
        default_statement_timeout: float | None = None,
        lock_retry_attempts: int = 5,
        lock_retry_delay: float = 0.2,
        lock_retry_max_delay: float = 5.0,
        actor: str | None = None,
        origin: Origin | None = None,
        on_progress: Callable[[str], None] | None = None,
        connect_timeout: int = 10,
    ) -> None:
        """``default_lock_timeout``/``default_statement_timeout`` (seconds; 0 disables, None
        keeps the server's setting) apply to migrations that set none of their own.
        ``lock_retry_*``: attempts of a transaction that hits lock_timeout, and the backoff."""
        if not history_schema or len(history_schema) > _IDENTIFIER_MAX:
            raise ValueError(f"history schema name must be 1 to {_IDENTIFIER_MAX} characters")
        self._url = database_url
        self.history_schema = history_schema
        self.application_name = application_name
        self.lock_wait_seconds = lock_wait_seconds
        self.settings = RunSettings(
            lock_timeout=default_lock_timeout,
            statement_timeout=default_statement_timeout,
            retry=RetryPolicy(lock_retry_attempts, lock_retry_delay, lock_retry_max_delay),
        )
        self.actor = actor or _default_actor()
        self.origin = origin
        self._on_progress = on_progress
        self.connect_timeout = connect_timeout

    def _progress(self, message: str) -> None:
        if self._on_progress is not None:
            self._on_progress(message)

    def __enter__(self) -> Migrator:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to release: every call opens and closes its own connection."""

    def __repr__(self) -> str:
        return f"Migrator({describe(self._url)!r}, history_schema={self.history_schema!r})"

    # -- public API ----------------------------------------------------------------------------

    def apply(
        self,
        sources: Iterable[MigrationSource],
        *,
        target: str | None = None,
        dry_run: bool = False,
        allow_out_of_order: bool = False,
        on_result: ResultCallback | None = None,
    ) -> RunReport:
        """Apply pending migrations up to target, in version order, each in its own
        transaction; stop at the first failure (reported in the result, not raised).
        ``dry_run``: run them in one transaction that is rolled back, and report.
        ``on_result`` is called with each migration's result as soon as it is known."""
        by_key = planning.index_sources(sources)
        target_key = planning.parse_target(target)
        kind: Kind = "dry_run" if dry_run else "apply"
        started = now()
        with self._context(lock=True) as ctx:
            plan = self._checked_plan(ctx, by_key, dry_run=dry_run)
            todo = planning.pending(plan.records, by_key, target_key)
            early = planning.out_of_order(todo, plan.records)
            newest = planning.newest_applied(plan.records)
            if early and not allow_out_of_order and newest is not None:
                raise OutOfOrder([s.version for s in early], newest.version)
            steps = [Step.of(s, "apply", ctx.session.server_version) for s in todo]
            _refuse_forbidden(steps)
            if not steps:
                self._progress("nothing to apply")
            elif not dry_run:
                ctx.history.ensure()
            results = self._run_steps(ctx, steps, dry_run=dry_run, on_result=on_result)
            version = _schema_version(plan, [] if dry_run else results)
        return RunReport(str(ctx.run_id), kind, started, now(), tuple(results), version)

    def rollback(
        self,
        sources: Iterable[MigrationSource],
        *,
        target: str | None = None,
        steps: int | None = None,
        versions: Sequence[str] | None = None,
        dry_run: bool = False,
        on_result: ResultCallback | None = None,
    ) -> RunReport:
        """Revert applied migrations newest first: those above ``target`` ("0": all), the
        newest ``steps``, or exactly ``versions``; the newest one when none is given. Refused
        before any change if one of them has no rollback SQL. ``dry_run``: run the rollback
        SQL in one transaction that is rolled back, and report."""
        by_key = planning.index_sources(sources)
        target_key = planning.parse_target(target)
        started = now()
        with self._context(lock=True) as ctx:
            plan = self._checked_plan(ctx, by_key, dry_run=dry_run)
            chosen = planning.to_revert(
                plan.records, target=target_key, steps=steps, versions=versions
            )
            lacking = [
                r.version for r in chosen if (s := by_key.get(r.key)) is None or s.down_sql is None
            ]
            if lacking:
                raise NoRollbackSql(lacking)
            todo = [Step.of(by_key[r.key], "rollback", ctx.session.server_version) for r in chosen]
            _refuse_forbidden(todo)
            if not todo:
                self._progress("nothing to roll back")
            elif not dry_run:
                ctx.history.ensure()
            results = self._run_steps(ctx, todo, dry_run=dry_run, on_result=on_result)
            version = _schema_version(plan, [] if dry_run else results)
        kind: Kind = "dry_run" if dry_run else "rollback"
        return RunReport(str(ctx.run_id), kind, started, now(), tuple(results), version)

    def status(self, sources: Iterable[MigrationSource]) -> list[VersionState]:
        """Every version in the history or the sources, in order, with its state."""
        by_key = planning.index_sources(sources)
        with self._context(lock=False) as ctx:
            return planning.states(ctx.history.load(), by_key)

    def validate(
        self,
        sources: Iterable[MigrationSource],
        *,
        target: str | None = None,
        allow_out_of_order: bool = False,
    ) -> ValidationReport:
        """What apply (with the same arguments) would refuse or run, without changing
        anything or waiting for the lock. Out-of-order versions are listed only when they would
        be refused."""
        by_key = planning.index_sources(sources)
        target_key = planning.parse_target(target)
        with self._context(lock=False) as ctx:
            records = ctx.history.load()
            todo = planning.pending(records, by_key, target_key)
            early = [] if allow_out_of_order else planning.out_of_order(todo, records)
            problems = []
            for source in todo:
                step = Step.of(source, "apply", ctx.session.server_version)
                try:
                    _refuse_forbidden([step])
                except EngineError as exc:
                    problems.append(str(exc))
                if step.parse_error is not None:
                    problems.append(
                        f"migration {source.version}: the SQL does not parse: {step.parse_error}"
                    )
            return ValidationReport(
                drifted=tuple(planning.drifted(records, by_key)),
                pending=tuple(s.version for s in todo),
                missing=tuple(
                    r.version for k, r in sorted(records.items()) if r.applied and k not in by_key
                ),
                out_of_order=tuple(s.version for s in early),
                problems=tuple(problems),
                schema_version=planning.schema_version(records),
            )

    def repair(self, sources: Iterable[MigrationSource]) -> RunReport:
        """Accept the sources' current checksums (and rollback availability) for applied
        versions, recorded as runs of kind repair."""
        by_key = planning.index_sources(sources)
        started = now()
        with self._context(lock=True) as ctx:
            records = ctx.history.load(upgrade=True)
            results = self._record(ctx, "repair", planning.needs_repair(records, by_key))
            version = planning.schema_version(records)
        return RunReport(str(ctx.run_id), "repair", started, now(), tuple(results), version)

    def baseline(
        self, sources: Iterable[MigrationSource], version: str, *, description: str | None = None
    ) -> RunReport:
        """Mark every source up to ``version`` as applied without running it (kind baseline),
        for a database whose schema already has them. When ``version`` itself is not among
        the sources, a marker row for it is recorded too, with ``description`` (default
        "baseline") and the checksum of empty SQL; status lists it as missing."""
        by_key = planning.index_sources(sources)
        limit = planning.parse_target(version)
        assert limit is not None
        started = now()
        with self._context(lock=True) as ctx:
            plan = self._checked_plan(ctx, by_key)
            todo = planning.pending(plan.records, by_key, limit)
            if limit not in by_key and limit not in plan.records:
                todo.append(MigrationSource(version, description or "baseline", ""))
            results = self._record(ctx, "baseline", todo)
            new = _schema_version(plan, results)
        return RunReport(str(ctx.run_id), "baseline", started, now(), tuple(results), new)

    def last_applied(self, version: str) -> AppliedRun | None:
        """The run that applied version, as the history recorded it (its id, timing, rows and
        tables, the resource that asked): None unless a successful apply is the version's
        last word. Read-only: takes no lock, creates no history. For a caller whose apply
        reported nothing because the version was already applied, e.g. an operator restarted
        between the COMMIT and writing status."""
        planning.parse_target(version)  # InvalidSources for a malformed version
        with self._context(lock=False) as ctx:
            return last_apply(ctx.history, version)

    def ensure_history(self) -> None:
        """Create the history table if it does not exist yet, under the migration lock. The
        operator calls this before a pre-migration backup, so the backup holds the history and
        restoring it brings the history back to its state before the migration too."""
        with self._context(lock=True) as ctx:
            ctx.history.ensure()

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def _context(self, *, lock: bool) -> Iterator[RunContext]:
        session = Session.connect(
            self._url, application_name=self.application_name, connect_timeout=self.connect_timeout
        )
        advisory = AdvisoryLock(
            session,
            lock_key(self.history_schema),
            wait_seconds=self.lock_wait_seconds,
            on_wait=self._progress,
        )
        try:
            history = History(session, self.history_schema)
            if lock:
                advisory.acquire()
            yield RunContext(
                session,
                history,
                Catalog(session, self.history_schema),
                self.settings,
                uuid.uuid4(),
                self.actor,
                self.origin,
                self._progress,
            )
        except psycopg.OperationalError as exc:
            raise connection_failed(self._url, exc) from None
        except psycopg.Error as exc:
            raise EngineError(redact(one_line(str(exc)))) from None
        finally:
            try:
                session.rollback_if_open()
                advisory.release()
            except psycopg.Error:
                pass  # the connection is gone, and the session lock with it
            session.close()

    def _checked_plan(
        self, ctx: RunContext, by_key: planning.Sources, *, dry_run: bool = False
    ) -> _Plan:
        records = ctx.history.load(upgrade=not dry_run)
        drift = planning.drifted(records, by_key)
        if drift:
            raise DriftDetected([d.version for d in drift])
        return _Plan(records, by_key)

    def _run_steps(
        self, ctx: RunContext, steps: list[Step], *, dry_run: bool, on_result: ResultCallback | None
    ) -> list[MigrationResult]:
        if dry_run:
            checked = run_dry_run(ctx, steps)
            for result in checked:
                self._report(result, on_result)
            return checked
        results: list[MigrationResult] = []
        runner = TransactionalRunner(ctx)
        batches = BatchRunner(ctx, runner)
        can_batch = ctx.session.server_version >= MIN_SERVER
        for together, segment in _segments(steps, batch=can_batch):
            if together:
                # Each result is reported as soon as its batch is back, not at the end.
                if not self._collect(runner.flush(), results, on_result):
                    return results
                with closing(batches.run(segment)) as batched:
                    if not self._collect(batched, results, on_result):
                        return results
                continue
            if not self._collect(self._one_at_a_time(ctx, runner, segment), results, on_result):
                return results
        self._collect(runner.flush(), results, on_result)
        return results

    def _one_at_a_time(
        self, ctx: RunContext, runner: TransactionalRunner, segment: list[Step]
    ) -> Iterator[MigrationResult]:
        """segment's results as its steps run one by one; the caller stops at a failure, and
        no step after it runs (a generator runs its next step only when asked)."""
        for index, step in enumerate(segment):
            if self._on_progress is not None:
                self._progress(f"{step.kind} {step.version} {step.source.description}".rstrip())
            if step.source.transactional:
                done = runner.run(step, defer=index + 1 < len(segment))
            else:
                done = runner.flush()
                if all(r.ok for r in done):
                    done.append(run_non_transactional(ctx, step))
            yield from done

    def _collect(
        self,
        done: Iterable[MigrationResult],
        results: list[MigrationResult],
        on_result: ResultCallback | None,
    ) -> bool:
        """Report and keep done's results (as they come); False if one failed."""
        for result in done:
            results.append(result)
            self._report(result, on_result)
            if not result.ok:
                return False
        return True

    def _report(self, result: MigrationResult, on_result: ResultCallback | None) -> None:
        if self._on_progress is not None:
            self._progress(_summary(result))
        if on_result is not None:
            on_result(result)

    def _record(
        self, ctx: RunContext, kind: Kind, sources: Sequence[MigrationSource]
    ) -> list[MigrationResult]:
        """Append success rows of kind for sources without running them, in one transaction."""
        if not sources:
            return []
        ctx.history.ensure()
        at = now()
        rows = [
            history_row(
                ctx, Step(s, kind, ""), "success", started_at=at, finished_at=at, duration=0.0
            )
            for s in sources
        ]
        ctx.history.append(*rows)
        for row in rows:
            self._progress(f"{kind} {row.version}: recorded {row.checksum}")
        return [result_of(r) for r in rows]


def _segments(steps: Sequence[Step], *, batch: bool) -> Iterator[tuple[bool, list[Step]]]:
    """steps in runs: (True, steps) for two or more batchable ones in a row, else
    (False, steps) to run one at a time."""
    alone: list[Step] = []
    index = 0
    while index < len(steps):
        end = index
        while batch and end < len(steps) and batchable(steps[end]):
            end += 1
        if end - index >= 2:
            if alone:
                yield False, alone
                alone = []
            yield True, list(steps[index:end])
            index = end
        else:
            alone.append(steps[index])
            index += 1
    if alone:
        yield False, alone


def _refuse_forbidden(steps: Sequence[Step]) -> None:
    """TransactionForbidden for the first statement a transactional step cannot run;
    InvalidSources for SQL with a NUL character (the protocol ends a query at it)."""
    for step in steps:
        if "\x00" in step.sql:
            raise InvalidSources(
                f"migration {step.version}: its {step.kind} SQL holds a NUL"
                " character, which PostgreSQL cannot take"
            )
        discard = next((s for s in step.statements or () if s.command == "DISCARD ALL"), None)
        if discard is not None:
            raise TransactionForbidden(
                step.version,
                discard.index,
                discard.line,
                discard.command,
                "DISCARD ALL would release the migration lock and the engine's prepared"
                " statements; use DISCARD PLANS, DISCARD TEMP or DISCARD SEQUENCES",
            )
        if not step.source.transactional or not step.statements:
            continue
        for s in step.statements:
            reason = None
            if s.transaction_forbidden:
                reason = (
                    f"{s.reason or s.command + ' cannot run in a transaction'}; mark the"
                    " migration no-transaction (-- kubemigrate: no-transaction)"
                )
            elif s.transaction_control:
                reason = (
                    "transaction control in a transactional migration; remove it (each"
                    " migration already runs in its own transaction)"
                )
            elif s.command == "COPY" and _COPY_STDIO.search(s.text):
                reason = "COPY FROM STDIN / TO STDOUT is not supported; use INSERT"
            if reason is not None:
                raise TransactionForbidden(step.version, s.index, s.line, s.command, reason)


def _schema_version(plan: _Plan, results: Sequence[MigrationResult]) -> str | None:
    """Highest applied version after results, from the state before and what changed."""
    applied = {k: r.version for k, r in plan.records.items() if r.applied}
    for result in results:
        key = planning.parse_target(result.version)
        assert key is not None
        if result.status == "success" and result.kind in ("apply", "baseline"):
            applied[key] = result.version
        elif result.status == "success" and result.kind == "rollback":
            applied.pop(key, None)
    return applied[max(applied)] if applied else None


def _summary(result: MigrationResult) -> str:
    if result.ok:
        return (
            f"{result.kind} {result.version}: {result.status} in"
            f" {result.duration_seconds * 1000:.0f} ms, {result.rows_affected} row(s)"
        )
    where = f" at statement {result.statement_index}" if result.statement_index else ""
    where += f", line {result.line}" if result.line else ""
    return f"{result.kind} {result.version}: failed{where}: [{result.sqlstate}] {result.error}"
