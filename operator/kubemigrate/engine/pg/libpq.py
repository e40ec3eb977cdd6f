"""How pg_dump, pg_restore and psql are told where to connect without exposing the password.

A password on a command line is readable by every user of the machine (``ps``, ``/proc``), so the
client programs get the connection as a conninfo string without the password (``--dbname``) and
the password in ``PGPASSWORD``, which only the child process and root can read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from psycopg import conninfo

from kubemigrate.engine.errors import InvalidUrl
from kubemigrate.engine.pg.target import NOT_A_URL, secrets_of

__all__ = ["InvalidUrl", "ToolConnection", "parse", "password_of", "tool_connection"]

# Keys that are secrets: kept out of the conninfo string that lands in argv.
_SECRET_KEYS = {"password": "PGPASSWORD"}
DEFAULT_CONNECT_TIMEOUT = "10"


@dataclass(frozen=True)
class ToolConnection:
    """What a client program needs: ``--dbname`` text (no secrets) and extra environment."""

    dbname_arg: str
    env: Mapping[str, str] = field(repr=False)
    database: str
    secrets: tuple[str, ...] = field(repr=False, default=())

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The child's environment: base (default: ours) plus the connection's variables."""
        merged = dict(os.environ if base is None else base)
        merged.update(self.env)
        return merged


def parse(url: str) -> dict[str, str]:
    """The URL (or key=value DSN) as libpq keywords, or InvalidUrl."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except Exception:  # psycopg.ProgrammingError, whose text quotes the value
        raise InvalidUrl(NOT_A_URL) from None
    return {k: str(v) for k, v in parts.items() if v is not None}


def tool_connection(url: str) -> ToolConnection:
    """Split url into a password-free ``--dbname`` conninfo and ``PGPASSWORD``.

    ``connect_timeout`` defaults to 10 seconds, so an unreachable host fails instead of hanging
    a Job until its deadline.
    """
    params = parse(url)
    env: dict[str, str] = {}
    secrets: list[str] = []
    for key, var in _SECRET_KEYS.items():
        value = params.pop(key, None)
        if value:
            env[var] = value
            secrets.append(value)
    params.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    return ToolConnection(
        dbname_arg=conninfo.make_conninfo(**params),
        env=env,
        database=params.get("dbname") or params.get("user") or "",
        secrets=tuple(dict.fromkeys([*secrets, *secrets_of(url)])),
    )


def password_of(url: str) -> str:
    """The URL's password ('' if none or unparsable), for redacting messages."""
    try:
        return parse(url).get("password", "")
    except InvalidUrl:
        return ""
