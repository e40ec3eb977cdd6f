"""Helpers for the engine's tests: sources, and reading the database directly."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from kubemigrate.engine.migrate.sources import MigrationSource


def src(version: str, up: str, down: str | None = None, **kw: Any) -> MigrationSource:
    """A migration source with a description derived from its version."""
    return MigrationSource(version, kw.pop("description", f"migration {version}"), up, down, **kw)


def query(url: str, text: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(text, params)
        return cur.fetchall() if cur.description else []


def tables(url: str) -> set[str]:
    """The user tables of the database (the history schema excluded)."""
    return {
        r[0]
        for r in query(
            url,
            """
        SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'kubemigrate')""",
        )
    }


def history(url: str, schema: str = "kubemigrate") -> list[dict[str, Any]]:
    """The history rows in order, as dicts."""
    with (
        psycopg.connect(url, autocommit=True) as conn,
        conn.cursor(row_factory=psycopg.rows.dict_row) as cur,
    ):
        cur.execute(sql.SQL("SELECT * FROM {}.history ORDER BY id").format(sql.Identifier(schema)))
        return cur.fetchall()
