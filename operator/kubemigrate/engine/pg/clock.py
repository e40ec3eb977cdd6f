"""Times read from the server as microseconds since the epoch, whatever its DateStyle.

A database may set DateStyle to SQL, Postgres or German; psycopg reads timestamps in text only
in the ISO style, and the engine must not change the session's style (migrations parse their
date literals in it). So the engine's own queries ask for numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def microseconds_sql(expression: str) -> str:
    """SQL for expression (a timestamptz) as whole microseconds since the epoch (bigint)."""
    return f"(extract(epoch FROM {expression}) * 1000000)::bigint"


def from_microseconds(value: int | str | None) -> datetime | None:
    """The UTC time ``microseconds_sql`` gave (a number, or its text), None for NULL."""
    if value is None or value == "":
        return None
    return EPOCH + timedelta(microseconds=int(value))
