"""One tenant of a fleet: a database URL that must be one, and a schema of a shared database.

A fleet worker reads each target's URL from a Secret it did not write, so it checks the value is
a connection string before trying it (InvalidUrl, quoting nothing). A schema-per-tenant target
runs on the shared database's URL with libpq's ``options=-c search_path=<schema>``: set at
connection start-up, it is the session's default, so the engine's ``RESET ALL`` between
migrations keeps it, and the migrations' unqualified names land in the tenant's schema.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import conninfo

from kubemigrate.engine.errors import EngineError, InvalidUrl
from kubemigrate.engine.pg.libpq import parse
from kubemigrate.engine.pg.redact import redact
from kubemigrate.engine.pg.session import Session, one_line
from kubemigrate.engine.pg.target import NOT_A_URL

_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")


def check_url(url: str) -> None:
    """InvalidUrl unless url is a non-empty PostgreSQL URL or key=value connection string."""
    if not url.strip():
        raise InvalidUrl(NOT_A_URL)
    parse(url)


def in_schema(url: str, schema: str) -> str:
    """url with the session's search_path set to schema at start-up (InvalidUrl if url is no
    connection string). Any ``options`` url had are kept, before ours."""
    check_url(url)
    params = parse(url)
    name = schema if _PLAIN.fullmatch(schema) else '"' + schema.replace('"', '""') + '"'
    escaped = name.replace("\\", "\\\\").replace(" ", "\\ ")
    options = params.get("options", "").strip()
    params["options"] = f"{options} -c search_path={escaped}".strip()
    return conninfo.make_conninfo(**params)


def schema_exists(url: str, schema: str) -> bool:
    """Whether url's database has schema; ConnectionFailed if it cannot be reached."""
    with Session.connect(url, application_name="kubemigrate-fleet", connect_timeout=10) as s:
        try:
            rows = s.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        except psycopg.Error as exc:
            raise EngineError(redact(one_line(str(exc)))) from None
    return bool(rows)
