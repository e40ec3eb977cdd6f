"""The one connection a run uses: it holds the advisory lock and runs every migration.

It is an autocommit session; transactions are opened explicitly with ``BEGIN`` on this same
connection, so the session-level lock is never inside a transaction and no side connection sits
idle in one (which would make ``CREATE INDEX CONCURRENTLY`` wait for it forever).

``script`` sends text with the simple-query protocol and returns every result, including the
ones before an error. That is what makes a migration cheap (the ``BEGIN``, the ``SET LOCAL``\\s,
the migration's statements and the catalog checks travel in one round trip) and still precise:
each statement's row count, and which statement failed, come from its own result.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import generators, pq
from psycopg.pq.abc import PGresult
from psycopg.rows import TupleRow

from kubemigrate.engine.errors import EngineError
from kubemigrate.engine.pg.libpq import parse
from kubemigrate.engine.pg.target import connection_failed

_OK = frozenset({pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY})
_COPY = frozenset({pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH})
NO_COPY = (
    "COPY FROM STDIN / TO STDOUT is not supported in migrations; use INSERT or COPY from"
    " a server-side file"
)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class SqlError:
    """A server error reduced to what a report needs. ``position`` is 1-based, in characters of
    the query text that was sent, when the server gave one."""

    sqlstate: str | None
    message: str
    position: int | None = None

    @classmethod
    def from_result(cls, result: PGresult, encoding: str) -> SqlError:
        def field(code: pq.DiagnosticField) -> str | None:
            raw = result.error_field(code)
            return raw.decode(encoding, "replace") if raw is not None else None

        primary = field(pq.DiagnosticField.MESSAGE_PRIMARY)
        if primary is None:
            primary = result.error_message.decode(encoding, "replace").strip() or "unknown error"
        position = field(pq.DiagnosticField.STATEMENT_POSITION)
        return cls(
            sqlstate=field(pq.DiagnosticField.SQLSTATE),
            message=_with_detail(
                primary,
                field(pq.DiagnosticField.MESSAGE_DETAIL),
                field(pq.DiagnosticField.MESSAGE_HINT),
            ),
            position=int(position) if position and position.isdigit() else None,
        )

    @classmethod
    def from_exception(cls, exc: psycopg.Error) -> SqlError:
        diag = exc.diag
        primary = diag.message_primary or one_line(str(exc)) or type(exc).__name__
        position = diag.statement_position
        return cls(
            sqlstate=diag.sqlstate or exc.sqlstate,
            message=_with_detail(primary, diag.message_detail, diag.message_hint),
            position=int(position) if position and position.isdigit() else None,
        )


def _with_detail(primary: str, detail: str | None, hint: str | None) -> str:
    parts = [primary] + [f"{k}: {v}" for k, v in (("detail", detail), ("hint", hint)) if v]
    return one_line("; ".join(parts))


def one_line(text: str) -> str:
    """text with every run of whitespace (newlines, tabs) made one space."""
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class ScriptOutcome:
    """The results of a script: one per statement that ran, and the error that stopped it."""

    results: Sequence[PGresult]
    error: SqlError | None
    failed_at: int | None
    """0-based index of the failing statement among the script's statements, if one failed."""
    encoding: str = "utf-8"
    """The connection's client encoding, for the values of results."""

    def rowcounts(self, start: int = 0) -> int:
        """Rows affected by the statements from ``start`` on (SELECTs count rows returned)."""
        return sum(max(r.command_tuples or 0, 0) for r in self.results[start:] if r.status in _OK)

    def value(self, index: int, row: int = 0, column: int = 0) -> str | None:
        """The text value of one cell of result ``index``."""
        result = self.results[index]
        if result.status != pq.ExecStatus.TUPLES_OK or result.ntuples <= row:
            return None
        raw = result.get_value(row, column)
        return raw.decode(self.encoding) if raw is not None else None


class Session:
    """An autocommit connection with a recognisable application_name, and its helpers."""

    def __init__(self, conn: psycopg.Connection[TupleRow]) -> None:
        self.conn = conn
        # Migrations may DEALLOCATE ALL; psycopg's own prepared statements would then be gone.
        conn.prepare_threshold = None
        self.pgconn = conn.pgconn
        self.encoding = conn.info.encoding
        self.server_version = conn.info.server_version
        self.lost: SqlError | None = None
        """The server's error that ended the connection (FATAL), if one did."""

    @classmethod
    def connect(cls, url: str, *, application_name: str, connect_timeout: int = 10) -> Session:
        """Connect, or raise ConnectionFailed with one line that holds no password (InvalidUrl,
        before trying, for a URL that does not parse)."""
        parse(url)
        try:
            # UTF8 whatever the database's encoding: migrations are read as UTF-8 text, and
            # the server converts them, refusing what the database cannot hold (22P05).
            conn = psycopg.connect(
                url,
                autocommit=True,
                application_name=application_name,
                connect_timeout=connect_timeout,
                client_encoding="UTF8",
            )
        except psycopg.Error as exc:
            raise connection_failed(url, exc) from None
        session = cls(conn)
        session.reset()
        return session

    @property
    def resets(self) -> str:
        """Authorization, role (which ``RESET ALL`` leaves alone) and every setting back to
        the session's defaults, then the engine's own setting. Resetting to the
        authenticated user is always allowed."""
        text = "RESET SESSION AUTHORIZATION;RESET ROLE;RESET ALL"
        if self.server_version >= 140000:
            # A killed runner's backend otherwise keeps running (and holding its locks) until
            # its statement ends and it finds nobody to send the result to.
            text += ";SET client_connection_check_interval = '1s'"
        return text

    @property
    def reset_sql(self) -> str:
        """The session back to the state it began with (``resets``), in a transaction of its
        own: sent after every migration, so that none inherits what the one before it did
        with ``SET ROLE``, ``SET SESSION AUTHORIZATION``, ``set_config(..., false)``, a
        ``SET`` in a DO block, .... Its own transaction: statements after a COMMIT in one
        message share the transaction a following BEGIN opens, which took its
        characteristics (default_transaction_read_only, ...) before they ran."""
        return f"BEGIN;{self.resets};COMMIT"

    @property
    def reset_statements(self) -> int:
        """How many statements ``reset_sql`` is."""
        return self.reset_sql.count(";") + 1

    def reset(self) -> None:
        self.script(self.reset_sql)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(
        self, query: Any, params: Sequence[Any] | None = None, *, prepare: bool | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement with bound parameters; its rows ([] if it returns none)."""
        with self.conn.cursor() as cur:
            cur.execute(query, params, prepare=prepare)
            return cur.fetchall() if cur.description is not None else []

    def script(self, text: str) -> ScriptOutcome:
        """Send text as one simple query; every result, stopping at the first error."""
        self.send(text)
        return self.receive()

    def run_params(self, text: str, params: Sequence[str | None]) -> ScriptOutcome:
        """Run one statement with ``$n`` parameters bound by the server (sent as text of
        unknown type, so the server infers each from where it is used); its result."""
        with self.conn.lock:
            self.pgconn.send_query_params(
                text.encode(self.encoding),
                [None if p is None else p.encode(self.encoding) for p in params],
            )
            self.conn.wait(generators.send(self.pgconn))
        return self.receive()

    def send(self, text: str) -> None:
        """Send text as one simple query and return while the server runs it; ``receive``
        collects the results. Nothing else may be sent in between."""
        with self.conn.lock:
            self.pgconn.send_query(text.encode(self.encoding))
            self.conn.wait(generators.send(self.pgconn))

    def receive(self) -> ScriptOutcome:
        """The results of the query ``send`` sent: all of them, stopping at the first error."""
        with self.conn.lock:
            results = self.conn.wait(generators.fetch_many(self.pgconn))
        if results and results[-1].status == pq.ExecStatus.COPY_IN:
            # The engine streams no data: end the COPY with an error of ours (the server then
            # skips the rest of the message, as for any error), and say so.
            self._refuse_copy()
            index = len(results) - 1
            return ScriptOutcome(results[:index], SqlError("0A000", NO_COPY), index, self.encoding)
        if results and results[-1].status in _COPY:
            # COPY TO STDOUT cannot be stopped short: the connection is closed (the server
            # then stops the message and rolls back).
            self.close()
            raise EngineError(NO_COPY)
        for index, result in enumerate(results):
            if result.status not in _OK:
                error = SqlError.from_result(result, self.encoding)
                if self.pgconn.status == pq.ConnStatus.BAD:
                    self.lost = error
                return ScriptOutcome(results[:index], error, index, self.encoding)
        return ScriptOutcome(results, None, None, self.encoding)

    def _refuse_copy(self) -> None:
        try:
            with self.conn.lock:
                self.conn.wait(generators.copy_end(self.pgconn, NO_COPY.encode()))
        except psycopg.DatabaseError:
            pass  # the server's "COPY from stdin failed", as asked

    def cancel(self) -> None:
        """Ask the server to cancel what it is running on this connection (what ``send``
        sent); ``receive`` still collects the results, up to the cancelled statement's."""
        self.conn.cancel_safe()

    @property
    def in_transaction(self) -> bool:
        return self.pgconn.transaction_status != pq.TransactionStatus.IDLE

    def rollback_if_open(self) -> None:
        """End a transaction left open or aborted by an error; a no-op when there is none."""
        if self.in_transaction and not self.conn.closed:
            self.script("ROLLBACK")
