"""The history table: an append-only log in a schema of its own, one row per run of a version.

A row is written in the same transaction as the migration it records, so the log and the schema
cannot disagree. The ``version_state`` view reduces the log to where each version stands (the
latest row that changed its state, and the latest accepted checksum), and the engine reads that
view in one query per run, whatever the number of versions.

Objects are created under the migration lock, so runners started together on a new database
do not race; ``IF NOT EXISTS`` and a retry on a unique violation (the catalog race PostgreSQL
reports for concurrent ``CREATE ... IF NOT EXISTS``) cover runners of other tools or older
versions that do not take the lock. ``schema_info`` records the layout's own version so that a
later kubemigrate can upgrade it, and an older one refuses a layout it does not know (the
layouts and their upgrades: ``history_layout``). Every write runs as the runner (``AS_RUNNER``),
whatever role the migration switched to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from psycopg import sql

from kubemigrate import __version__
from kubemigrate.engine.errors import EngineError, HistoryTooNew
from kubemigrate.engine.migrate.catalog import NAMED_DIFF, array_literal, user_tables_filter
from kubemigrate.engine.migrate.history_layout import CREATE, LAYOUT_VERSION, UPGRADES
from kubemigrate.engine.migrate.results import Kind, Origin, Status
from kubemigrate.engine.migrate.versions import version_key
from kubemigrate.engine.pg.clock import from_microseconds, microseconds_sql
from kubemigrate.engine.pg.literals import Value, literal
from kubemigrate.engine.pg.session import Session

RecordState = Literal["applied", "rolled_back", "failed", "incomplete"]

COLUMNS = (
    ("run_id", "uuid"),
    ("version", "text"),
    ("version_key", "numeric[]"),
    ("description", "text"),
    ("checksum", "text"),
    ("kind", "text"),
    ("status", "text"),
    ("started_at", "timestamptz"),
    ("finished_at", "timestamptz"),
    ("duration_ms", "double precision"),
    ("rows_affected", "bigint"),
    ("has_rollback", "boolean"),
    ("statement_index", "integer"),
    ("error_line", "integer"),
    ("sqlstate", "text"),
    ("error", "text"),
    ("attempts", "integer"),
    ("executed_by", "text"),
    ("engine_version", "text"),
    ("resource_name", "text"),
    ("resource_uid", "text"),
    ("resource_generation", "bigint"),
    ("tables_created", "text[]"),
    ("tables_altered", "text[]"),
    ("tables_dropped", "text[]"),
)
_TABLE_COLUMNS = 3  # the last three: given, or found by the catalog query in the INSERT
_RETURNING = (
    " RETURNING json_build_array(tables_created, tables_altered, tables_dropped,"
    f" {microseconds_sql('started_at')}, {microseconds_sql('finished_at')},"
    " duration_ms)"
)
"""What both INSERTs return: the tables, and the times (when the server's clock gave them)."""

START_CLOCK = (
    f"SELECT set_config('kubemigrate.started', {microseconds_sql('clock_timestamp()')}::text, true)"
)
"""Run first in a migration's transaction whose row takes the server's times (see
``server_times``): the server's clock when the migration started, in microseconds since the
epoch (text in no DateStyle or time zone), kept as a transaction setting and returned."""

AS_RUNNER = "SET LOCAL SESSION AUTHORIZATION DEFAULT;SET LOCAL role TO DEFAULT"
"""Run in a transaction before a history write: the row is written as the runner, whatever
role the migration switched to (a member of an owner role may ``SET ROLE`` to create objects
it owns, and that role may not write the history). ``LOCAL``: the migration's own role is back
after the transaction, for the next statement of a no-transaction migration."""
AS_RUNNER_STATEMENTS = 2

_STARTED = (
    "(timestamptz 'epoch' + current_setting('kubemigrate.started')::bigint"
    " * interval '1 microsecond')"
)
_SERVER_TIMES = {
    "started_at": _STARTED,
    "finished_at": "clock_timestamp()",
    "duration_ms": f"1000 * extract(epoch FROM clock_timestamp() - {_STARTED})",
}
_PER_MIGRATION = (
    "version",
    "version_key",
    "description",
    "checksum",
    "has_rollback",
    "tables_created",
)
"""The columns ``insert_run_sql`` gives per migration; tables_created last."""
INSERT_RUN = "kubemigrate_history_insert_run"
INSERT = "kubemigrate_history_insert"
INSERT_NAMED = "kubemigrate_history_insert_named"
"""Names of the session's prepared statements (see ``History.prepare``)."""


@dataclass(frozen=True)
class HistoryRow:
    """One row to append."""

    run_id: uuid.UUID
    version: str
    description: str
    checksum: str
    kind: Kind
    status: Status
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: float | None = None
    rows_affected: int | None = None
    has_rollback: bool = False
    statement_index: int | None = None
    error_line: int | None = None
    sqlstate: str | None = None
    error: str | None = None
    attempts: int = 1
    executed_by: str | None = None
    origin: Origin | None = None
    tables_created: tuple[str, ...] = ()
    tables_altered: tuple[str, ...] = ()
    tables_dropped: tuple[str, ...] = ()
    key: tuple[int, ...] | None = None
    """The version's key when the caller has it at hand (else computed from ``version``)."""
    blocked_by: str | None = None
    """Not a column: who held a lock the migration waited for (in ``error`` when it failed)."""

    def values(self) -> list[Value]:
        """The column values, in the order of ``COLUMNS``."""
        origin = self.origin or Origin()
        return [
            self.run_id,
            self.version,
            list(self.key or version_key(self.version)),
            self.description,
            self.checksum,
            self.kind,
            self.status,
            self.started_at,
            self.finished_at,
            self.duration_ms,
            self.rows_affected,
            self.has_rollback,
            self.statement_index,
            self.error_line,
            self.sqlstate,
            self.error,
            self.attempts,
            self.executed_by,
            __version__,
            origin.resource_name,
            origin.resource_uid,
            origin.resource_generation,
            list(self.tables_created),
            list(self.tables_altered),
            list(self.tables_dropped),
        ]


@dataclass(frozen=True)
class VersionRecord:
    """One line of ``version_state``: the history's last word on a version."""

    version: str
    key: tuple[int, ...]
    description: str
    state: RecordState
    checksum: str
    applied_at: datetime | None
    duration_ms: float | None
    rollback_available: bool
    sqlstate: str | None
    error: str | None
    last_kind: Kind = "apply"
    """The kind of the row that is the version's last word (apply, rollback, baseline)."""
    progress: RunProgress | None = None
    """How far that run got, when it was a no-transaction migration's that did not finish."""

    @property
    def applied(self) -> bool:
        return self.state == "applied"

    @property
    def rollback_incomplete(self) -> bool:
        """A rollback of a no-transaction migration stopped midway: neither state holds."""
        return self.state == "incomplete" and self.last_kind == "rollback"


@dataclass(frozen=True)
class RunProgress:
    """A no-transaction run's progress row (see ``history_layout``): its first ``done``
    statements ran (``digest``: sha256 of their text); ``running`` was sent and not known
    done when the run stopped."""

    kind: Kind
    statements: int
    done: int
    digest: str
    running: int | None
    batch: BatchCheckpoint | None = None
    """The checkpoint of its batched statement, once a batch of it committed."""


@dataclass(frozen=True)
class BatchCheckpoint:
    """How far a batched statement got: its last committed batch's record."""

    statement: int
    batches: int
    rows: int
    last_key: str | None
    size: int | None


def _progress(columns: list[Any]) -> RunProgress | None:
    """The progress columns of a ``version_state`` row, in its order."""
    kind, statements, done, digest, running, batch_statement, batches, rows, key, size = columns
    if kind is None or statements is None or done is None or digest is None:
        return None
    checkpoint = None
    if batch_statement is not None and batches is not None:
        checkpoint = BatchCheckpoint(batch_statement, int(batches), int(rows or 0), key, size)
    return RunProgress(cast(Kind, kind), statements, done, digest, running, checkpoint)


class History:
    """Creating, reading and appending to the history in one schema."""

    def __init__(self, session: Session, schema: str) -> None:
        self.session = session
        self.schema = schema
        self.prepared = False
        self.prepared_again = False
        self._run_insert: str | None = None
        """The PREPARE of ``prepare_run`` in force on the session, if any."""

    def _render(self, query: sql.Composed) -> str:
        return query.as_string(self.session.conn)

    # -- layout --------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.layout() is not None

    def layout(self) -> int | None:
        """The layout version of the history, None when there is no history."""
        rows = self.session.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
            [self._qualified("schema_info"), self._qualified("version_state")],
        )
        if not rows[0][0]:
            return None
        layout = self.session.execute(
            sql.SQL("SELECT layout_version FROM {}.schema_info").format(sql.Identifier(self.schema))
        )
        return int(layout[0][0]) if layout else 0

    def ensure(self) -> None:
        """Create or upgrade the layout, and prepare the INSERTs; with the lock held."""
        layout = self.layout()
        if layout is None:
            self._create()
            layout = LAYOUT_VERSION
        self._upgrade(layout)
        self.prepare()

    def _upgrade(self, layout: int) -> None:
        self.check_layout(layout)
        while layout < LAYOUT_VERSION:
            step = sql.SQL(UPGRADES[layout]).format(schema=sql.Identifier(self.schema))
            outcome = self.session.script(
                f"BEGIN;\n{self._render(step)};\nUPDATE {self._qualified('schema_info')}"
                f" SET layout_version = {layout + 1};\nCOMMIT"
            )
            if outcome.error is not None:
                self.session.rollback_if_open()
                raise EngineError(
                    f"cannot upgrade the history in schema {self.schema}: {outcome.error.message}"
                )
            layout += 1

    def _create(self) -> None:
        ddl = sql.SQL(CREATE).format(
            schema=sql.Identifier(self.schema),
            layout=sql.Literal(LAYOUT_VERSION),
            engine=sql.Literal(__version__),
        )
        for attempt in range(3):
            outcome = self.session.script("BEGIN;\n" + self._render(ddl) + "\nCOMMIT")
            if outcome.error is None:
                return
            self.session.rollback_if_open()
            # 23505: two creators raced on pg_namespace/pg_type; the other one won.
            if outcome.error.sqlstate != "23505" or attempt == 2:
                raise EngineError(
                    f"cannot create the history in schema {self.schema}: {outcome.error.message}"
                )

    def check_layout(self, layout: int) -> None:
        if layout > LAYOUT_VERSION:
            raise HistoryTooNew(
                f"the history in schema {self.schema} has layout {layout}, newer than this"
                f" kubemigrate ({__version__}) understands ({LAYOUT_VERSION}); upgrade kubemigrate"
            )

    def _qualified(self, name: str) -> str:
        return sql.Identifier(self.schema, name).as_string(self.session.conn)

    def table(self, name: str) -> str:
        """The history schema's table name, quoted and qualified."""
        return self._qualified(name)

    # -- reading -------------------------------------------------------------------------------

    def load(self, *, upgrade: bool = False) -> dict[tuple[int, ...], VersionRecord]:
        """Every version the history knows, keyed by version key; {} if there is no history.
        ``upgrade`` (with the lock held): bring an older layout up to date first."""
        layout = self.layout()
        if layout is None:
            return {}
        self.check_layout(layout)
        if layout < LAYOUT_VERSION:
            if not upgrade:
                raise EngineError(
                    f"the history in schema {self.schema} has the older layout"
                    f" {layout}; run apply once to upgrade it"
                )
            self._upgrade(layout)
        return self._read()

    def peek(self) -> dict[tuple[int, ...], VersionRecord] | None:
        """What ``load`` would read, without the lock and without raising: None when the
        history's layout is not this kubemigrate's (it is upgraded under the lock)."""
        layout = self.layout()
        if layout is None:
            return {}
        return self._read() if layout == LAYOUT_VERSION else None

    def _read(self) -> dict[tuple[int, ...], VersionRecord]:
        rows = self.session.execute(
            sql.SQL(
                "SELECT version, description, state, checksum,"
                f" {microseconds_sql('applied_at')}, duration_ms,"
                " rollback_available, sqlstate, error, last_kind, progress_kind,"
                " progress_statements, progress_done, progress_digest, progress_running,"
                " progress_batch_statement, progress_batches, progress_batch_rows,"
                " progress_last_key, progress_batch_size"
                " FROM {}.version_state"
            ).format(sql.Identifier(self.schema))
        )
        records = {}
        for (
            version,
            desc,
            state,
            checksum,
            applied_at,
            ms,
            rollback,
            sqlstate,
            error,
            last_kind,
            *progress,
        ) in rows:
            key = version_key(version)
            records[key] = VersionRecord(
                version,
                key,
                desc,
                cast(RecordState, state),
                checksum,
                from_microseconds(applied_at),
                ms,
                bool(rollback),
                sqlstate,
                error,
                cast(Kind, last_kind),
                _progress(progress),
            )
        return records

    # -- writing -------------------------------------------------------------------------------

    def prepare(self, *, again: bool = False) -> None:
        """Prepare the INSERTs on the session, once: the one that finds the tables a migration
        created costs more to plan than to run, and runs once per migration."""
        if self.prepared and not again:
            return
        self.prepared_again = self.prepared_again or again
        names = ", ".join(sql.Identifier(c).as_string(self.session.conn) for c, _ in COLUMNS)
        types = [t for _, t in COLUMNS]
        given = len(COLUMNS) - _TABLE_COLUMNS
        params = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        diff = NAMED_DIFF.format(tables=user_tables_filter(self.session, self.schema))
        table = self._qualified("history")
        statements = (
            f"PREPARE {INSERT} ({', '.join(types)}) AS"
            f" INSERT INTO {table} ({names}) VALUES ({params})" + _RETURNING,
            f"PREPARE {INSERT_NAMED} ({', '.join(types[:given])}) AS"
            f" INSERT INTO {table} ({names})"
            f" SELECT {', '.join(f'${i}' for i in range(1, given + 1))}, d.* FROM ({diff}) AS d"
            + _RETURNING,
        )
        for statement in statements:
            outcome = self.session.script(statement)
            # 42P05: still prepared from before (only some were lost).
            if outcome.error is not None and outcome.error.sqlstate != "42P05":
                raise EngineError(f"cannot prepare the history INSERT: {outcome.error.message}")
        self.prepared = True

    def prepare_run(self, template: HistoryRow) -> None:
        """Prepare the INSERT of ``insert_run_sql`` (and make sure the others are prepared):
        template's values that every successful migration of a run shares (run id, kind, who,
        engine version, resource) written in, and the times taken from the server's clock (see
        ``START_CLOCK``) by the statement itself. Its EXECUTE is a fraction of the full one for
        the server to parse."""
        values = dict(
            zip((c for c, _ in COLUMNS), _literals(template.values(), False), strict=True)
        )
        for number, column in enumerate(_PER_MIGRATION, start=1):
            values[column] = f"${number}"
        values.update(
            started_at="t.s", finished_at="t.f", duration_ms="1000 * extract(epoch FROM t.f - t.s)"
        )
        types = dict(COLUMNS)
        names = ", ".join(sql.Identifier(c).as_string(self.session.conn) for c in values)
        prepare = (
            f"PREPARE {INSERT_RUN} ({', '.join(types[c] for c in _PER_MIGRATION)}) AS"
            f" INSERT INTO {self._qualified('history')} ({names})"
            f" SELECT {', '.join(values.values())} FROM (SELECT {_STARTED} AS s,"
            " clock_timestamp() AS f) AS t" + _RETURNING
        )
        # A migration run alone in between (DEALLOCATE ALL, DISCARD ALL in a no-transaction
        # one) may have dropped any of the session's prepared statements: look, then redo.
        present = {
            name
            for (name,) in self.session.execute(
                "SELECT name FROM pg_prepared_statements WHERE name = ANY (%s)",
                [[INSERT, INSERT_NAMED, INSERT_RUN]],
            )
        }
        if {INSERT, INSERT_NAMED} - present:
            self.prepared = False
            self.prepare()
        if INSERT_RUN in present and prepare == self._run_insert:
            return  # the same run's next stretch of batches
        text = f"DEALLOCATE {INSERT_RUN};{prepare}" if INSERT_RUN in present else prepare
        outcome = self.session.script(text)
        if outcome.error is not None:
            raise EngineError(f"cannot prepare the history INSERT: {outcome.error.message}")
        self._run_insert = prepare

    def insert_run_sql(self, row: HistoryRow, created: str) -> str:
        """The INSERT of row with the statement ``prepare_run`` made, the SQL ``created`` giving
        its tables_created."""
        values = dict(zip((c for c, _ in COLUMNS), row.values(), strict=True))
        rendered = [literal(values[c]) for c in _PER_MIGRATION[:-1]]
        return f"EXECUTE {INSERT_RUN}({','.join(rendered)},{created})"

    def insert_sql(self, row: HistoryRow, *, prepared: bool = True) -> str:
        """The INSERT of row, to send along with other statements: ``EXECUTE`` of the prepared
        one, or (``prepared=False``, for a migration that deallocates prepared statements) a
        plain INSERT."""
        values = ",".join(_literals(row.values(), False))
        if prepared:
            return f"EXECUTE {INSERT}({values})"
        names = ", ".join(sql.Identifier(c).as_string(self.session.conn) for c, _ in COLUMNS)
        return f"INSERT INTO {self._qualified('history')} ({names}) VALUES ({values})"

    def insert_named_sql(
        self, row: HistoryRow, tables: list[str], *, server_times: bool = False
    ) -> tuple[str, int]:
        """SQL that inserts row with the table columns found from the catalog among tables
        (names quoted for ``to_regclass``), and how many statements it is; the INSERT
        returns ``[created, altered, dropped, ...]`` as JSON."""
        values = ",".join(_literals(row.values()[:-_TABLE_COLUMNS], server_times))
        # enable_seqscan off while the statement is planned: a plan cached while the catalog
        # was small would otherwise scan all of pg_class once it is large.
        return (
            f"SET LOCAL kubemigrate.tables = {literal(array_literal(tables))};"
            "SET LOCAL enable_seqscan = off;\n"
            f"{AS_RUNNER};EXECUTE {INSERT_NAMED}({values})"
        ), 3 + AS_RUNNER_STATEMENTS

    def append(self, *rows: HistoryRow, also: str | None = None) -> None:
        """Insert rows in their own short transaction, as the runner, with the SQL ``also``
        (a progress row's change) in the same transaction."""
        if not rows and also is None:
            return
        self.prepare()
        parts = [self.insert_sql(r) for r in rows] + ([also] if also is not None else [])
        self.write(";\n".join(parts))

    def write(self, text: str) -> None:
        """Run text (statements on the history's tables) in a transaction of its own, as the
        runner."""
        outcome = self.session.script(f"BEGIN;{AS_RUNNER};\n{text};\nCOMMIT")
        if outcome.error is not None:
            self.session.rollback_if_open()
            raise EngineError(f"cannot write the history: {outcome.error.message}")


_TIME_COLUMNS = {i: _SERVER_TIMES[c] for i, (c, _) in enumerate(COLUMNS) if c in _SERVER_TIMES}


def _literals(values: list[Value], server_times: bool) -> list[str]:
    """values as literals; with ``server_times``, the time columns as the server's clock."""
    rendered = [literal(v) for v in values]
    if server_times:
        for index, expression in _TIME_COLUMNS.items():
            rendered[index] = expression
    return rendered
