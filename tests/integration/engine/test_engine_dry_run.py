"""A dry run reports what would change and leaves the database exactly as it was."""

from __future__ import annotations

from typing import Any

from integration.engine.engine_helpers import query, src, tables
from kubemigrate.engine.migrate.migrator import Migrator


def _fingerprint(url: str) -> list[tuple[Any, ...]]:
    """Everything a dry run could have changed: relations, columns, rows of the user tables."""
    return query(
        url,
        """
        SELECT c.relname, c.relkind, a.attname, a.atttypid::regtype::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%'
        ORDER BY 1, 3""",
    ) + query(url, "SELECT nspname FROM pg_namespace ORDER BY 1")


def test_dry_run_reports_and_changes_nothing(engine: Migrator, database_url: str) -> None:
    engine.apply(
        [
            src(
                "1",
                "CREATE TABLE a (id int);\nINSERT INTO a SELECT generate_series(1, 5);"
                "\nCREATE TABLE gone (id int);",
            )
        ]
    )
    before = _fingerprint(database_url)
    rows_before = query(database_url, "SELECT count(*) FROM kubemigrate.history")

    sources = [
        src(
            "1",
            "CREATE TABLE a (id int);\nINSERT INTO a SELECT generate_series(1, 5);"
            "\nCREATE TABLE gone (id int);",
        ),
        src("2", "CREATE TABLE b (id int);\nINSERT INTO b SELECT id FROM a;"),
        src(
            "3",
            "ALTER TABLE a ADD COLUMN name text;\nUPDATE a SET name = 'x' WHERE id < 3;\n"
            "DROP TABLE gone;",
        ),
        src("4", "CREATE INDEX CONCURRENTLY b_id ON b (id);", transactional=False),
    ]
    report = engine.apply(sources, dry_run=True)

    assert report.kind == "dry_run" and report.ok
    two, three, four = report.results
    assert (two.kind, two.status) == ("dry_run", "success")
    assert two.tables_created == ("public.b",) and two.rows_affected == 5
    assert three.tables_altered == ("public.a",) and three.rows_affected == 2
    assert three.tables_dropped == ("public.gone",)
    assert four.status == "skipped" and "no-transaction" in (four.error or "")
    assert report.schema_version == "1"
    assert _fingerprint(database_url) == before
    assert query(database_url, "SELECT count(*) FROM kubemigrate.history") == rows_before
    assert query(database_url, "SELECT count(*) FROM a") == [(5,)]


def test_dry_run_on_a_new_database_creates_no_history(engine: Migrator, database_url: str) -> None:
    before = _fingerprint(database_url)
    report = engine.apply([src("1", "CREATE TABLE a (id int)")], dry_run=True)
    assert report.results[0].tables_created == ("public.a",)
    assert _fingerprint(database_url) == before
    assert tables(database_url) == set()


def test_dry_run_reports_a_failure_without_recording_it(
    engine: Migrator, database_url: str
) -> None:
    report = engine.apply(
        [
            src("1", "CREATE TABLE a (id int);"),
            src("2", "CREATE TABLE b (id int);\nSELECT nope FROM b;"),
            src("3", "CREATE TABLE c (id int);"),
        ],
        dry_run=True,
    )
    assert [r.status for r in report.results] == ["success", "failed"]
    failed = report.results[1]
    assert (failed.sqlstate, failed.statement_index, failed.line) == ("42703", 2, 2)
    assert query(database_url, "SELECT to_regnamespace('kubemigrate')") == [(None,)]
    assert tables(database_url) == set()
