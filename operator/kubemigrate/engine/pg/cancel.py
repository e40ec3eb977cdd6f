"""Stopping a run from outside it: a front end that started a run on another thread (the
operator, when a Migration is deleted mid-apply) cancels its statement from a second session.
The run's sessions are found by their application_name, which the front end made unique."""

from __future__ import annotations

import psycopg

from kubemigrate.engine.errors import EngineError
from kubemigrate.engine.pg.redact import redact
from kubemigrate.engine.pg.session import Session, one_line

_CANCEL = """
SELECT count(*) FILTER (WHERE pg_cancel_backend(pid))
FROM pg_stat_activity
WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()
"""


def cancel_sessions(url: str, application_name: str) -> int:
    """pg_cancel_backend for every session of url's database named application_name; how many
    were signalled. A cancelled statement fails with SQLSTATE 57014, so the run's transaction
    rolls back (a COMMIT already under way still completes). ConnectionFailed if the database
    cannot be reached."""
    with Session.connect(url, application_name="kubemigrate-cancel", connect_timeout=5) as session:
        try:
            rows = session.execute(_CANCEL, [application_name])
        except psycopg.Error as exc:
            raise EngineError(redact(one_line(str(exc)))) from None
    return int(rows[0][0]) if rows else 0
