"""Helpers for the backup tests: a database worth backing up, and a fingerprint of its data."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

# A few tables (one of 50,000 rows), two schemas, a foreign key, NULLs, text with quotes and
# newlines, bytea and jsonb, an empty table, serial and standalone sequences, an index, a view.
SCHEMA_SQL = """
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    email text,
    created_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    amount numeric(12, 2) NOT NULL,
    note text,
    payload jsonb,
    blob bytea
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE TABLE empty_table (id int PRIMARY KEY);
CREATE SEQUENCE invoice_numbers START 1000;
CREATE SCHEMA audit;
CREATE TABLE audit.events (id int PRIMARY KEY, kind text, at timestamptz);
CREATE VIEW big_spenders AS
    SELECT c.id, c.name, sum(o.amount) AS total
    FROM customers c JOIN orders o ON o.customer_id = c.id
    GROUP BY c.id, c.name HAVING sum(o.amount) > 2000;

INSERT INTO customers (name, email)
    SELECT 'customer ' || g || CASE WHEN g % 7 = 0 THEN E' o''brien\\nline' ELSE '' END,
           CASE WHEN g % 5 = 0 THEN NULL ELSE 'c' || g || '@example.com' END
    FROM generate_series(1, 1000) g;
INSERT INTO orders (customer_id, amount, note, payload, blob)
    SELECT 1 + g % 1000, (g % 997) / 7.0,
           CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END,
           jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g % 10)),
           CASE WHEN g % 11 = 0 THEN decode(md5(g::text), 'hex') END
    FROM generate_series(1, 50000) g;
INSERT INTO audit.events
    SELECT g, 'kind' || g % 4, '2024-06-01'::timestamptz + g * interval '1 minute'
    FROM generate_series(1, 300) g;
SELECT nextval('invoice_numbers') FROM generate_series(1, 5);
"""

TABLES = ("public.customers", "public.orders", "public.empty_table", "audit.events")
ROWS = {
    "public.customers": 1000,
    "public.orders": 50000,
    "public.empty_table": 0,
    "audit.events": 300,
}


def query(url: str, text: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(text, params)
        return cur.fetchall() if cur.description else []


def populate(url: str) -> None:
    """Fill an empty database with the objects and rows above."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)  # type: ignore[arg-type]


def fingerprint(url: str) -> dict[str, Any]:
    """Per table: row count and md5 of its ordered rows; sequences' positions; the view's rows.

    Two databases with equal fingerprints hold the same data.
    """
    result: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
            )
        ]
        for name in names:
            schema, table = name.split(".")
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
                    "FROM {}.{} t"
                ).format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchone()
            result[name] = row
        for seq, last, called in conn.execute(
            "SELECT format('%I.%I', schemaname, sequencename), last_value, last_value "
            "IS NOT NULL FROM pg_sequences ORDER BY 1"
        ):
            result[f"sequence {seq}"] = (last, called)
        for (view,) in conn.execute(
            "SELECT format('%I.%I', schemaname, viewname) FROM pg_views "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ):
            result[f"view {view}"] = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(v::text, ',' ORDER BY v::text), '')) "
                f"FROM {view} v"
            ).fetchone()
        result["indexes"] = sorted(
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname IN ('public', 'audit')"
            )
        )
    return result
