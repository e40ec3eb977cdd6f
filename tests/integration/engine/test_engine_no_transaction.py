"""Statements PostgreSQL refuses in a transaction: refused up front, or run one by one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integration.engine.engine_helpers import history, query, src, tables
from kubemigrate.engine.errors import TransactionForbidden
from kubemigrate.engine.migrate.migrator import Migrator


def test_forbidden_statement_is_refused_before_anything_runs(
    engine: Migrator, database_url: str
) -> None:
    sources = [
        src("1", "CREATE TABLE a (id int);"),
        src("2", "CREATE TABLE b (id int);\n\nCREATE INDEX CONCURRENTLY b_id ON b (id);"),
    ]
    with pytest.raises(TransactionForbidden) as caught:
        engine.apply(sources)
    message = str(caught.value)
    assert "migration 2, statement 2 (line 3, CREATE INDEX CONCURRENTLY)" in message
    assert "no-transaction" in message and "nothing was run" in message
    assert "\n" not in message
    assert tables(database_url) == set()
    assert query(database_url, "SELECT to_regnamespace('kubemigrate')") == [(None,)]


def test_concurrent_index_runs_outside_a_transaction(engine: Migrator, database_url: str) -> None:
    sources = [
        src("1", "CREATE TABLE a (id int, name text);\nINSERT INTO a VALUES (1, 'x'), (2, 'y');"),
        src(
            "2",
            "CREATE INDEX CONCURRENTLY a_name ON a (name);\nUPDATE a SET name = upper(name);",
            "DROP INDEX CONCURRENTLY a_name",
            transactional=False,
            verify_sql="SELECT true",
        ),
    ]
    report = engine.apply(sources)
    assert report.ok, report.failed
    assert report.results[1].rows_affected == 2
    rows = history(database_url)
    assert [(r["version"], r["status"]) for r in rows] == [
        ("1", "success"),
        ("2", "pending"),
        ("2", "success"),
    ]
    assert rows[1]["run_id"] == rows[2]["run_id"]
    assert query(
        database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_name'::regclass"
    ) == [(True,)]
    assert [s.state for s in engine.status(sources)] == ["applied", "applied"]

    back = engine.rollback(sources, steps=1)
    assert back.ok
    assert query(database_url, "SELECT to_regclass('a_name')") == [(None,)]
    assert [(r["kind"], r["status"]) for r in history(database_url)[-2:]] == [
        ("rollback", "pending"),
        ("rollback", "success"),
    ]


def test_invalid_index_is_dropped_before_a_retry(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    messages: list[str] = []
    engine = make_engine(on_progress=messages.append)
    engine.apply([src("1", "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1), (1);")])
    index = src(
        "2",
        "-- kubemigrate: no-transaction\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS a_id ON a (id);",
        transactional=False,
    )

    failed = engine.apply([index]).failed
    assert failed is not None and failed.sqlstate == "23505"
    assert failed.statement_index == 1 and failed.line == 2
    assert query(
        database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id'::regclass"
    ) == [(False,)]
    assert [s.state for s in engine.status([index])][-1] == "failed"

    query(database_url, "DELETE FROM a WHERE ctid <> (SELECT min(ctid) FROM a)")
    assert engine.apply([index]).ok
    # Without the drop, IF NOT EXISTS would have kept the invalid index.
    assert query(
        database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id'::regclass"
    ) == [(True,)]
    assert any("dropping invalid index public.a_id" in m for m in messages)


def test_no_transaction_failure_midway_records_failed(engine: Migrator, database_url: str) -> None:
    source = src(
        "1",
        "CREATE TABLE a (id int);\nCREATE TABLE a (id int);\nCREATE TABLE c (id int);",
        transactional=False,
    )
    failed = engine.apply([source]).failed
    assert failed is not None
    assert (failed.sqlstate, failed.statement_index, failed.line) == ("42P07", 2, 2)
    # Not atomic: the first statement stays done, and the history says it failed.
    assert tables(database_url) == {"public.a"}
    assert [r["status"] for r in history(database_url)] == ["pending", "failed"]
