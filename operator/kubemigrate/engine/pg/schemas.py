"""The schemas of a schema-per-tenant fleet, from the user's query, run read-only.

The query is the user's own (``spec.targets.schemas.query``); it runs in a read-only
transaction with a statement timeout, and only names that are plain identifiers come back, so a
query that returns junk yields a refusal, not a target named by it.
"""

from __future__ import annotations

import re

import psycopg

from kubemigrate.engine.errors import SchemaQueryFailed
from kubemigrate.engine.pg.session import Session, SqlError

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")
QUERY_TIMEOUT_MS = 30_000


def query_schemas(url: str, query: str, *, limit: int, application_name: str) -> list[str]:
    """The distinct names the query's first column returns, sorted; at most limit of them."""
    with Session.connect(url, application_name=application_name) as session:
        try:
            session.execute("BEGIN READ ONLY")
            session.execute(f"SET LOCAL statement_timeout = {QUERY_TIMEOUT_MS}")
            rows = session.execute(query)
            session.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise SchemaQueryFailed(
                f"spec.targets.schemas.query failed: {SqlError.from_exception(exc).message}"
            ) from None
    names = sorted({str(row[0]) for row in rows if row and row[0] is not None})
    bad = [n for n in names if not SCHEMA_NAME.match(n)]
    if bad:
        raise SchemaQueryFailed(
            f"spec.targets.schemas.query returned {len(bad)} value(s) that are not lower-case "
            f"schema names, e.g. {bad[0][:63]!r}"
        )
    if len(names) > limit:
        raise SchemaQueryFailed(
            f"spec.targets.schemas.query returned {len(names)} schemas; at most {limit}"
        )
    return names
