"""``Migrator``: the public face of the migration engine, used by the CLI and the operator.

Every call opens one connection, and calls that change anything take the database's migration
lock on it first, create the history if needed, read the history's state in one query, check
every applied checksum against the given sources, and only then run anything. Read-only calls
(``status``, ``validate``) take no lock and never create the history.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import psycopg

from kubemigrate.engine.errors import (
    ConnectionFailed,
    ConnectionLost,
    DriftDetected,
    EngineError,
    NoRollbackSql,
    OutOfOrder,
)
from kubemigrate.engine.migrate import planning
from kubemigrate.engine.migrate.activity import (
    Activity,
    BlockerWatch,
    lost_reason,
    watch_interval,
)
from kubemigrate.engine.migrate.batchprogress import BatchCallback, PauseCheck
from kubemigrate.engine.migrate.catalog import Catalog
from kubemigrate.engine.migrate.history import History
from kubemigrate.engine.migrate.locking import RunLock
from kubemigrate.engine.migrate.progress import unfinished
from kubemigrate.engine.migrate.recorded import last_apply
from kubemigrate.engine.migrate.refusals import refuse_forbidden, refuse_undecided
from kubemigrate.engine.migrate.repairs import settle_in_doubt
from kubemigrate.engine.migrate.results import (
    AppliedRun,
    Kind,
    MigrationResult,
    Origin,
    RunReport,
    ValidationReport,
    VersionState,
)
from kubemigrate.engine.migrate.runloop import ResultCallback, RunLoop
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.splitting import EarlySteps
from kubemigrate.engine.migrate.step import (
    RetryPolicy,
    RunContext,
    RunSettings,
    Step,
    history_row,
    now,
    result_of,
)
from kubemigrate.engine.pg.redact import redact
from kubemigrate.engine.pg.session import Session, one_line
from kubemigrate.engine.pg.target import connection_failed, describe, secrets_of

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
        on_batch: BatchCallback | None = None,
        paused: PauseCheck | None = None,
    ) -> None:
        """``default_lock_timeout``/``default_statement_timeout`` (seconds; 0 disables, None
        keeps the server's setting) apply to migrations that set none of their own.
        ``lock_retry_*``: attempts of a transaction that hits lock_timeout, and the backoff.
        ``on_batch`` hears every batch of a batched statement (``BatchProgress``);
        ``paused`` is asked before each batch, which waits while it returns True."""
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
        self.on_batch = on_batch
        self.paused = paused

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
        parsed = EarlySteps("apply", lambda records: planning.pending(records, by_key, target_key))
        with self._context(lock=True, before_lock=parsed.early) as ctx:
            plan = self._checked_plan(ctx, by_key, dry_run=dry_run)
            todo = planning.pending(plan.records, by_key, target_key)
            early = planning.out_of_order(todo, plan.records)
            newest = planning.newest_applied(plan.records)
            if early and not allow_out_of_order and newest is not None:
                raise OutOfOrder([s.version for s in early], newest.version)
            steps = [parsed.step(ctx, s) for s in todo]
            refuse_forbidden(steps)
            if not steps:
                self._progress("nothing to apply")
            elif not dry_run:
                refuse_undecided(steps, plan.records)
                ctx.history.ensure()
            results = self._run_steps(
                ctx, steps, plan.records, dry_run=dry_run, on_result=on_result
            )
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

        def revertible(records: planning.Records) -> list[MigrationSource]:
            chosen = planning.to_revert(records, target=target_key, steps=steps, versions=versions)
            return [s for r in chosen if (s := by_key.get(r.key)) is not None and s.down_sql]

        parsed = EarlySteps("rollback", revertible)
        with self._context(lock=True, before_lock=parsed.early) as ctx:
            plan = self._checked_plan(ctx, by_key, dry_run=dry_run)
            chosen = planning.to_revert(
                plan.records, target=target_key, steps=steps, versions=versions
            )
            lacking = [
                r.version for r in chosen if (s := by_key.get(r.key)) is None or s.down_sql is None
            ]
            if lacking:
                raise NoRollbackSql(lacking)
            todo = [parsed.step(ctx, by_key[r.key]) for r in chosen]
            refuse_forbidden(todo)
            if not todo:
                self._progress("nothing to roll back")
            elif not dry_run:
                refuse_undecided(todo, plan.records)
                ctx.history.ensure()
            results = self._run_steps(ctx, todo, plan.records, dry_run=dry_run, on_result=on_result)
            version = _schema_version(plan, [] if dry_run else results)
        kind: Kind = "dry_run" if dry_run else "rollback"
        return RunReport(str(ctx.run_id), kind, started, now(), tuple(results), version)

    def status(self, sources: Iterable[MigrationSource]) -> list[VersionState]:
        """Every version in the history or the sources, in order, with its state; for one a
        run left midway, what the next run will do (``VersionState.resume``)."""
        by_key = planning.index_sources(sources)
        with self._context(lock=False) as ctx:
            records = ctx.history.load()
            notes = unfinished(records, by_key, ctx.session.server_version)
            return planning.states(records, by_key, notes)

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
                    refuse_forbidden([step])
                    refuse_undecided([step], records)
                except EngineError as exc:
                    problems.append(str(exc))
                if step.parse_error is not None:
                    problems.append(
                        f"migration {source.version}: the SQL does not parse: {step.parse_error}"
                    )
            notes = unfinished(records, by_key, ctx.session.server_version)
            return ValidationReport(
                drifted=tuple(planning.drifted(records, by_key)),
                pending=tuple(s.version for s in todo),
                missing=tuple(
                    r.version for k, r in sorted(records.items()) if r.applied and k not in by_key
                ),
                out_of_order=tuple(s.version for s in early),
                problems=tuple(problems),
                schema_version=planning.schema_version(records),
                incomplete=tuple(
                    f"migration {records[k].version}: {note}" for k, note in sorted(notes.items())
                ),
            )

    def repair(
        self, sources: Iterable[MigrationSource], *, completed: Sequence[str] = ()
    ) -> RunReport:
        """Accept the sources' current checksums (and rollback availability) for applied
        versions, recorded as runs of kind repair. And settle what the engine cannot: a
        no-transaction migration whose run stopped in a statement whose outcome the catalog
        cannot tell (``NeedsRepair``) has that statement recorded as not done (the next run
        runs it again), or as done for the versions in ``completed``."""
        by_key = planning.index_sources(sources)
        started = now()
        with self._context(lock=True) as ctx:
            records = ctx.history.load(upgrade=True)
            results = self._record(ctx, "repair", planning.needs_repair(records, by_key))
            results += settle_in_doubt(ctx, records, by_key, completed)
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
    def _context(
        self, *, lock: bool, before_lock: Callable[[RunContext], None] | None = None
    ) -> Iterator[RunContext]:
        """The call's connection and helpers; ``before_lock`` runs once connected, before the
        lock is taken (or waited for)."""
        session = self._connect()
        advisory = RunLock(
            session,
            self.history_schema,
            connect=self._connect,
            wait_seconds=self.lock_wait_seconds,
            on_wait=self._progress,
        )
        activity = Activity()
        try:
            history = History(session, self.history_schema)
            ctx = RunContext(
                session,
                history,
                Catalog(session, self.history_schema),
                self.settings,
                uuid.uuid4(),
                self.actor,
                self.origin,
                self._progress,
                activity,
                on_batch=self.on_batch,
                paused=self.paused,
            )
            if before_lock is not None:
                before_lock(ctx)
            if lock:
                advisory.acquire()
                ctx = replace(ctx, guard=advisory.guard_session)
            yield ctx
        except psycopg.OperationalError as exc:
            raise self._lost(session, activity, exc) from None
        except psycopg.Error as exc:
            raise EngineError(redact(one_line(str(exc)))) from None
        finally:
            try:
                session.rollback_if_open()
                advisory.release()
            except psycopg.Error:
                pass  # the connection is gone, and the session lock with it
            session.close()

    def _lost(
        self, session: Session, activity: Activity, exc: psycopg.OperationalError
    ) -> ConnectionFailed:
        """The error for a connection that failed or was lost: naming the migration that was
        running, if one was."""
        if activity.doing is None:
            return connection_failed(self._url, exc)
        reason = redact(lost_reason(session, exc), *secrets_of(self._url))
        return ConnectionLost(
            f"lost the connection to {describe(self._url)} during {activity.doing}: {reason};"
            " what committed before is in the history, and the next run starts from there",
            activity.doing,
        )

    def _connect(self) -> Session:
        return Session.connect(
            self._url, application_name=self.application_name, connect_timeout=self.connect_timeout
        )

    def _checked_plan(
        self, ctx: RunContext, by_key: planning.Sources, *, dry_run: bool = False
    ) -> _Plan:
        records = ctx.history.load(upgrade=not dry_run)
        drift = planning.drifted(records, by_key)
        if drift:
            raise DriftDetected([d.version for d in drift])
        return _Plan(records, by_key)

    def _run_steps(
        self,
        ctx: RunContext,
        steps: list[Step],
        records: planning.Records,
        *,
        dry_run: bool,
        on_result: ResultCallback | None,
    ) -> list[MigrationResult]:
        loop = RunLoop(ctx, records, on_progress=self._on_progress, on_result=on_result)
        if ctx.guard is None or not steps:
            return loop.run(steps, dry_run=dry_run)
        timeouts = [
            s.source.lock_timeout
            if s.source.lock_timeout is not None
            else self.settings.lock_timeout
            for s in steps
        ]
        with BlockerWatch(
            ctx.guard, ctx.session.pgconn.backend_pid, watch_interval(timeouts)
        ) as watch:
            ctx.activity.blockers = watch.take
            try:
                return loop.run(steps, dry_run=dry_run)
            finally:
                ctx.activity.blockers = Activity().blockers

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
