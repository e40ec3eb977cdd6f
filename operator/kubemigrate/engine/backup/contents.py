"""Whether a restore target is empty: a restore without ``clean`` must not mix into live data.

"Non-empty" means the database holds, outside the system schemas (``pg_catalog``,
``information_schema``, ``pg_toast*``, ``pg_temp*``), any of: a schema other than ``public``; a
relation (table, view, materialized view, sequence, foreign table, composite type; indexes are
their tables'); a function or procedure; a base, enum, domain or range type. Objects that belong
to an extension do not count: a new database cloned from a template with extensions is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

_USER_SCHEMA = """
  n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
"""


def _not_extension_member(catalog: str, oid: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass"
        f" AND d.objid = {oid} AND d.deptype = 'e')"
    )


OBJECTS_SQL = f"""
SELECT kind, name, count(*) OVER () FROM (
  SELECT 1 AS o, 'schema' AS kind, quote_ident(n.nspname) AS name
  FROM pg_namespace n
  WHERE {_USER_SCHEMA} AND n.nspname <> 'public'
    AND {_not_extension_member("pg_namespace", "n.oid")}
  UNION ALL
  SELECT 2, CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                           WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                           WHEN 'c' THEN 'type' ELSE 'table' END,
         quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE {_USER_SCHEMA} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
    AND {_not_extension_member("pg_class", "c.oid")}
  UNION ALL
  SELECT 3, 'function', p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE {_USER_SCHEMA} AND {_not_extension_member("pg_proc", "p.oid")}
  UNION ALL
  SELECT 4, 'type', format_type(t.oid, NULL)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE {_USER_SCHEMA} AND t.typtype IN ('b', 'd', 'e', 'r', 'm') AND t.typcategory <> 'A'
    AND {_not_extension_member("pg_type", "t.oid")}
) objects
ORDER BY o, name
LIMIT %s
"""


@dataclass(frozen=True)
class Contents:
    """The first few user objects of a database, and how many there are in all."""

    examples: tuple[str, ...]
    total: int

    @property
    def empty(self) -> bool:
        return self.total == 0

    def describe(self) -> str:
        """``table public.a, schema audit and 12 more``."""
        shown = ", ".join(self.examples)
        more = self.total - len(self.examples)
        return shown + (f" and {more} more" if more > 0 else "")


def user_objects(conn: psycopg.Connection[Any], limit: int = 5) -> Contents:
    """What user objects conn's database holds (see the module docstring for what counts)."""
    rows = conn.execute(OBJECTS_SQL, (limit,)).fetchall()
    return Contents(
        examples=tuple(f"{kind} {name}" for kind, name, _ in rows),
        total=int(rows[0][2]) if rows else 0,
    )
