"""Exact per-table row counts, and comparing two sets of them: how a restore proves itself.

The tables counted are the ones whose rows pg_dump writes: ordinary tables (partitions
included; partitioned parents are skipped, their rows are their partitions') in every
non-system schema, except tables that belong to an extension. Counting runs with
``row_security = off``, as pg_dump does, so row-level security fails loudly instead of
silently hiding rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

# Tables per counting query: one round trip for many small tables, no giant query text.
_BATCH = 200

TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Mismatch:
    """A table whose count differs; ``actual`` is 0 (and ``missing`` true) when it is absent."""

    table: str
    expected: int
    actual: int
    missing: bool = False


@dataclass(frozen=True)
class CountCheck:
    """Per-table counts after a restore compared with the ones recorded at backup time."""

    tables: int
    rows: int
    matched: bool
    mismatches: tuple[Mismatch, ...] = field(default=())

    def summary(self, limit: int = 3) -> str:
        """``4 tables, 7000351 rows, all match`` or the first few differences."""
        head = f"{self.tables} tables, {self.rows} rows"
        if self.matched:
            return f"{head}, all match"
        shown = ", ".join(
            f"{m.table} missing (expected {m.expected} rows)"
            if m.missing
            else f"{m.table} has {m.actual} rows, expected {m.expected}"
            for m in self.mismatches[:limit]
        )
        more = len(self.mismatches) - limit
        return f"{head}; {len(self.mismatches)} tables differ: {shown}" + (
            f" and {more} more" if more > 0 else ""
        )


def qualified(schema: str, table: str) -> str:
    """``schema.table``: the key counts are stored under (display only, never re-parsed)."""
    return f"{schema}.{table}"


def count_tables(
    conn: psycopg.Connection[Any],
    only: Mapping[str, int] | None = None,
    *,
    background: bool = False,
) -> dict[str, int]:
    """Exact row counts of every dumpable table (or of those in ``only`` that exist).

    Runs in whatever transaction conn is in, so called inside the backup's snapshot it counts
    exactly the rows pg_dump writes. ``background``: counting runs alongside pg_dump, so spend
    the least CPU (no parallel workers, no JIT) rather than finish soonest.
    """
    conn.execute("SET row_security = off")
    if background:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.execute("SET jit = off")
    names = [(str(s), str(t)) for s, t in conn.execute(TABLES_SQL).fetchall()]
    if only is not None:
        names = [n for n in names if qualified(*n) in only]
    counts: dict[str, int] = {}
    for start in range(0, len(names), _BATCH):
        batch = names[start : start + _BATCH]
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}::int, count(*) FROM {}.{}").format(
                sql.Literal(start + i), sql.Identifier(schema), sql.Identifier(table)
            )
            for i, (schema, table) in enumerate(batch)
        )
        for index, count in conn.execute(query).fetchall():
            counts[qualified(*names[int(index)])] = int(count)
    return counts


def compare(expected: Mapping[str, int], actual: Mapping[str, int]) -> CountCheck:
    """Every expected table's count against the actual one; extra actual tables are ignored."""
    mismatches = []
    for table in sorted(expected):
        want = expected[table]
        if table not in actual:
            mismatches.append(Mismatch(table, want, 0, missing=True))
        elif actual[table] != want:
            mismatches.append(Mismatch(table, want, actual[table]))
    return CountCheck(
        tables=len(expected),
        rows=sum(actual.get(t, 0) for t in expected),
        matched=not mismatches,
        mismatches=tuple(mismatches),
    )
