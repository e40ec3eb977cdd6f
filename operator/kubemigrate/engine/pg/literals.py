"""SQL literals for the few Python types the history holds, rendered without a round trip.

The history row travels in the same simple-query message as ``COMMIT``, so its values are
literals, not bound parameters. psycopg's client-side binding would do, but costs more than the
rest of a trivial migration's client work together; these types are few and fixed.
Strings use the ``E''`` form whenever they hold a backslash, so they read the same whatever
``standard_conforming_strings`` says.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime

Value = str | int | float | bool | datetime | uuid.UUID | Sequence[str] | Sequence[int] | None


def literal(value: Value) -> str:
    """value as a SQL literal (untyped where the context gives the type)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"'{value}'"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamps in the history must be timezone-aware")
        return quote(value.isoformat())
    if isinstance(value, uuid.UUID):
        return f"'{value}'"
    return "ARRAY[" + ",".join(literal(v) for v in value) + "]" if value else "'{}'"


def quote(text: str) -> str:
    if "\x00" in text:
        raise ValueError("PostgreSQL text cannot hold NUL characters")
    body = text.replace("'", "''")
    if "\\" in body:
        return "E'" + body.replace("\\", "\\\\") + "'"
    return "'" + body + "'"
