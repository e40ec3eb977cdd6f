"""What a migration did to tables, read from the system catalogs inside its own transaction.

Picked per migration from its statements, so the common case costs next to nothing:

- ``NONE``: statements that cannot create, alter or drop a table (INSERT, CREATE INDEX,
  GRANT, ...) need no catalog query.
- ``NAMED``: CREATE TABLE, ALTER TABLE and the like. The tables they name are looked up by
  name after they ran, by index, and checked for catalog rows this transaction wrote
  (``xmin`` is the current transaction id): a table is *created* when its system-column rows
  in ``pg_attribute`` are new too (they are only ever written at creation), otherwise
  *altered* when its ``pg_class``, column or constraint rows are new. This runs inside the
  history INSERT, prepared once per session: planning a catalog query costs more than
  running it.
- ``FULL``: a snapshot of every table (name, and a fingerprint of its columns and
  constraints) before and after. For drops, renames, DO blocks, function calls, anything not
  recognised, and always for dry runs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from kubemigrate.engine.pg.literals import quote
from kubemigrate.engine.pg.session import Session

if TYPE_CHECKING:  # the parser is loaded only when there is SQL to run
    from kubemigrate.engine.migrate.statements import Statement


class DiffMode(enum.Enum):
    NONE = "none"
    NAMED = "named"
    FULL = "full"


_NEUTRAL = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "CREATE INDEX",
        "COMMENT",
        "GRANT",
        "REVOKE",
        "CREATE VIEW",
        "CREATE FUNCTION",
        "CREATE PROCEDURE",
        "CREATE SEQUENCE",
        "ALTER SEQUENCE",
        "CREATE TYPE",
        "CREATE DOMAIN",
        "SET",
        "SHOW",
        "ANALYZE",
        "LOCK TABLE",
        "CREATE TRIGGER",
        "CREATE RULE",
        "CREATE MATERIALIZED VIEW",
        "REFRESH MATERIALIZED VIEW",
        "CREATE ROLE",
        "ALTER ROLE",
        "CREATE POLICY",
        "ALTER DEFAULT PRIVILEGES",
        "CREATE STATS",
        "EXPLAIN",
    }
)
_NAMED = frozenset(
    {
        "CREATE TABLE",
        "CREATE TABLE AS",
        "SELECT INTO",
        "CREATE FOREIGN TABLE",
        "ALTER TABLE",
        "ALTER FOREIGN TABLE",
        "ALTER COLUMN",
        "ALTER CONSTRAINT",
        "ALTER INDEX",
        "ALTER VIEW",
        "ALTER MATERIALIZED VIEW",
        "ALTER TYPE",
    }
)
# A table renamed or moved is no longer found under the name the statement gives.
_MOVES = re.compile(r"\b(RENAME|SET\s+SCHEMA)\b", re.IGNORECASE)


def diff_mode(statements: Sequence[Statement] | None) -> DiffMode:
    """How to find the tables statements change; None (SQL that did not parse) means FULL."""
    if statements is None:
        return DiffMode.FULL
    mode = DiffMode.NONE
    for s in statements:
        if s.command in _NEUTRAL:
            continue
        if s.command not in _NAMED or _MOVES.search(s.text):
            return DiffMode.FULL
        mode = DiffMode.NAMED
    return mode


def created_tables(statements: Sequence[Statement], history_schema: str) -> str | None:
    """SQL for the text[] of the tables statements create, without asking the catalog, when the
    statements give the same answer the catalog query would (see ``NAMED_DIFF``): one plain
    ``CREATE TABLE`` (not IF NOT EXISTS, not temporary) naming no other relation (no LIKE,
    INHERITS, PARTITION OF, REFERENCES), the other statements neutral and naming no relation
    but that table (a GRANT or trigger on another table changes its catalog row). '{}' when
    they create no table and are all neutral (nothing to look up); otherwise None, and the
    catalog tells (several tables too: their order is the database's collation's, and a
    subquery to sort them cannot go into an EXECUTE's parameters). An unqualified table is
    created in ``current_schema()``, the first schema of the search path that exists."""
    names: list[str] = []
    created: set[str] = set()
    named: set[str] = set()
    for s in statements:
        if s.command in _NEUTRAL:
            named.update(s.relations)
            continue
        node = s.tree.get("CreateStmt") if s.command == "CREATE TABLE" else None
        relation = (node or {}).get("relation") or {}
        schema = relation.get("schemaname")
        if (
            node is None
            or node.get("if_not_exists")
            or len(s.relations) != 1
            or relation.get("relpersistence") == "t"
            or relation.get("catalogname")
            or schema in (history_schema, "information_schema")
            or (schema or "").startswith("pg_")
        ):
            return None
        created.update(s.relations)
        if schema is not None:
            names.append(f"ARRAY[format('%I.%I', {quote(schema)}, {quote(relation['relname'])})]")
            continue
        # Left out, as the catalog query leaves them out, when the search path puts the table
        # in the history's schema, information_schema, or pg_temp (a temporary table).
        names.append(
            f"CASE WHEN current_schema() = ANY (ARRAY[{quote(history_schema)},"
            " 'information_schema']) OR current_schema() LIKE 'pg\\_%' THEN '{}'::text[]"
            f" ELSE ARRAY[format('%I.%I', current_schema(), {quote(relation['relname'])})] END"
        )
    if not names:
        return "'{}'::text[]"
    if len(names) > 1 or not named <= created:
        return None
    return names[0]


_DATA_ONLY = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})
"""Commands that change rows, never a table's catalog entry: their relations are not looked up
(walking the trees of a data file's 40,000 INSERTs took seconds)."""


def named_tables(statements: Sequence[Statement]) -> list[str]:
    """The relations statements that may change a table's definition name, quoted for
    ``to_regclass``, once each."""
    return list(
        dict.fromkeys(
            quote_qualified(r)
            for s in statements
            if s.command not in _DATA_ONLY
            for r in s.relations
        )
    )


def array_literal(items: Sequence[str]) -> str:
    """items as the text of a PostgreSQL text[] (``{"a","b"}``), for a setting's value."""
    return (
        "{" + ",".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "}"
    )


@dataclass(frozen=True)
class TableChanges:
    created: tuple[str, ...] = ()
    altered: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


_USER_TABLES = """c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
  AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', {schema}])
  AND n.nspname NOT LIKE 'pg\\_%'"""

NAMED_DIFF = """
WITH x AS MATERIALIZED (SELECT pg_current_xact_id()::xid AS xid),
named AS MATERIALIZED (
    SELECT c.oid, c.relname, c.relnamespace, c.relkind, c.relpersistence, c.xmin AS row_xmin
    FROM pg_class c
    WHERE c.oid = ANY ((SELECT array_agg(to_regclass(t))
                        FROM unnest(current_setting('kubemigrate.tables')::text[]) AS t)::oid[])
)
SELECT coalesce(array_agg(name ORDER BY name) FILTER (WHERE created), '{{}}')::text[],
       coalesce(array_agg(name ORDER BY name) FILTER (WHERE NOT created), '{{}}')::text[],
       '{{}}'::text[]
FROM (
    SELECT format('%I.%I', n.nspname, c.relname) AS name,
           coalesce((SELECT true FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum < 0 AND a.xmin = x.xid LIMIT 1),
                    false) AS created,
           c.row_xmin = x.xid
           OR coalesce((SELECT true FROM pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attnum > 0 AND a.xmin = x.xid LIMIT 1),
                       false)
           OR coalesce((SELECT true FROM pg_constraint k
                        WHERE k.conrelid = c.oid AND k.xmin = x.xid LIMIT 1), false) AS changed
    FROM named c CROSS JOIN x JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {tables}
) found
WHERE changed
"""
"""Tables this transaction created or altered among those named in the setting
``kubemigrate.tables`` (a text[] literal), set just before. A setting, not a parameter: with
a parameter PostgreSQL plans the prepared statement anew on every execution (a custom plan
looks cheaper for an array of one), which costs more than running it. The MATERIALIZED
CTE and the LIMITs keep the generic plan to index lookups of the named tables, whatever the
number of tables in the database."""

_SNAPSHOT = """
SELECT c.oid::bigint, format('%I.%I', n.nspname, c.relname),
       md5(coalesce((SELECT string_agg(concat_ws(':', a.attnum, a.attname, a.atttypid,
                                                 a.atttypmod, a.attnotnull, a.attidentity,
                                                 a.attgenerated,
                                                 pg_get_expr(d.adbin, d.adrelid)),
                                       ',' ORDER BY a.attnum)
                     FROM pg_attribute a
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
           || '|' ||
           coalesce((SELECT string_agg(k.conname || ':' || pg_get_constraintdef(k.oid), ','
                                       ORDER BY k.conname)
                     FROM pg_constraint k WHERE k.conrelid = c.oid), ''))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {tables}
"""

_INDEX_VALID = """
SELECT i.indisvalid AND i.indisready
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname = %s AND i.indrelid = to_regclass(%s)
"""

_INVALID_INDEXES = """
SELECT format('%%I.%%I', n.nspname, c.relname)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND c.relname = ANY (%s)
  AND i.indrelid IN (SELECT to_regclass(t) FROM unnest(%s::text[]) AS t)
"""


def user_tables_filter(session: Session, history_schema: str) -> str:
    """SQL condition on ``pg_class c`` joined to ``pg_namespace n``: the users' own tables."""
    return sql.SQL(_USER_TABLES).format(schema=sql.Literal(history_schema)).as_string(session.conn)


class Catalog:
    """Catalog queries for one session, with the history schema left out of every answer."""

    def __init__(self, session: Session, history_schema: str) -> None:
        self.session = session
        self._snapshot = _SNAPSHOT.format(tables=user_tables_filter(session, history_schema))

    def snapshot(self) -> dict[int, tuple[str, str]]:
        """oid -> (qualified name, fingerprint of columns and constraints) of every user table."""
        rows = self.session.execute(self._snapshot)
        return {int(oid): (name, fingerprint) for oid, name, fingerprint in rows}

    @staticmethod
    def diff(before: dict[int, tuple[str, str]], after: dict[int, tuple[str, str]]) -> TableChanges:
        return TableChanges(
            created=tuple(sorted(after[o][0] for o in after.keys() - before.keys())),
            altered=tuple(
                sorted(after[o][0] for o in after.keys() & before.keys() if after[o] != before[o])
            ),
            dropped=tuple(sorted(before[o][0] for o in before.keys() - after.keys())),
        )

    def index_built(self, statement: Statement) -> bool | None:
        """For a CREATE INDEX with a name: True if its index exists and is valid, False if it
        exists and is not (a build that failed or was stopped), None if there is none."""
        tables = [quote_qualified(r) for r in statement.relations]
        if statement.index_name is None or not tables:
            return None
        rows = self.session.execute(_INDEX_VALID, [statement.index_name, tables[0]])
        return bool(rows[0][0]) if rows else None

    def any_exists(self, names: Sequence[str]) -> bool:
        """Whether any of the relations (as the statements module names them) exists."""
        if not names:
            return False
        rows = self.session.execute(
            "SELECT bool_or(to_regclass(r) IS NOT NULL) FROM unnest(%s::text[]) AS r",
            [[quote_qualified(n) for n in names]],
        )
        return bool(rows[0][0])

    def invalid_indexes(self, statements: Sequence[Statement]) -> list[str]:
        """Invalid indexes (a failed CREATE INDEX CONCURRENTLY) that statements create."""
        names = [s.index_name for s in statements if s.index_name]
        tables = [quote_qualified(r) for s in statements if s.index_name for r in s.relations]
        if not names or not tables:
            return []
        return [r[0] for r in self.session.execute(_INVALID_INDEXES, [names, tables])]


def quote_qualified(name: str) -> str:
    """``schema.table`` as the statements module gives it (unquoted parts), quoted."""
    return ".".join('"' + p.replace('"', '""') + '"' for p in name.split("."))
