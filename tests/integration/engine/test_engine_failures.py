"""A failed migration leaves the database as it was, plus a failed row, and blocks nothing."""

from __future__ import annotations

import pytest

from integration.engine.engine_helpers import history, query, src, tables
from kubemigrate.engine.errors import MigrationFailed, TransactionForbidden
from kubemigrate.engine.migrate.migrator import Migrator


def test_failure_leaves_no_trace_but_a_failed_row(engine: Migrator, database_url: str) -> None:
    report = engine.apply(
        [
            src(
                "1",
                "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n"
                "CREATE TABLE b (id int REFERENCES missing (id));",
            ),
        ]
    )
    failed = report.failed
    assert failed is not None and not report.ok
    assert failed.sqlstate == "42P01"
    assert failed.statement_index == 3 and failed.line == 3
    assert "missing" in (failed.error or "")
    assert tables(database_url) == set()
    rows = history(database_url)
    assert [(r["version"], r["status"]) for r in rows] == [("1", "failed")]
    assert rows[0]["sqlstate"] == "42P01"
    assert rows[0]["statement_index"] == 3 and rows[0]["error_line"] == 3
    assert rows[0]["tables_created"] == []
    with pytest.raises(MigrationFailed, match=r"apply of migration 1 failed, statement 3"):
        report.raise_for_failure()


def test_syntax_error_in_the_middle_then_fixed(engine: Migrator, database_url: str) -> None:
    sources = [
        src(f"{i:03}", f"-- migration {i}\nCREATE TABLE t{i} (id int);") for i in range(1, 101)
    ]
    broken = "-- migration 50\nCREATE TABLE t50 (id int);\nCREATE TABEL oops (id int);\n"
    sources[49] = src("050", broken)

    report = engine.apply(sources)

    assert [r.status for r in report.results] == ["success"] * 49 + ["failed"]
    failed = report.results[-1]
    assert failed.version == "050"
    assert failed.sqlstate == "42601"
    assert failed.line == 3
    assert failed.statement_index == 2
    assert "syntax error" in (failed.error or "")
    assert report.schema_version == "049"
    assert len(tables(database_url)) == 49

    sources[49] = src("050", "-- migration 50\nCREATE TABLE t50 (id int);\n")
    again = engine.apply(sources)
    assert again.ok
    assert [r.version for r in again.results] == [f"{i:03}" for i in range(50, 101)]
    assert len(tables(database_url)) == 100
    assert again.schema_version == "100"
    statuses = [(r["version"], r["status"]) for r in history(database_url)]
    assert statuses.count(("050", "failed")) == 1 and statuses.count(("050", "success")) == 1


def test_runtime_error_names_statement_and_line(engine: Migrator) -> None:
    sql = (
        "CREATE TABLE a (id int UNIQUE);\n\n"
        "INSERT INTO a VALUES (1);\n"
        "INSERT INTO a\n  VALUES (1);\n"
    )
    failed = engine.apply([src("1", sql)]).failed
    assert failed is not None
    assert failed.sqlstate == "23505"
    assert failed.statement_index == 3
    assert failed.line == 4
    assert "duplicate key" in (failed.error or "")
    assert "detail: Key (id)=(1) already exists" in (failed.error or "")


def test_error_position_maps_to_the_line_in_the_file(engine: Migrator) -> None:
    sql = "CREATE TABLE a (id int);\nSELECT\n  id,\n  nope\nFROM a;\n"
    failed = engine.apply([src("1", sql)]).failed
    assert failed is not None
    assert (failed.sqlstate, failed.statement_index, failed.line) == ("42703", 2, 4)


def test_a_failure_stops_the_run_and_never_blocks_the_next(
    engine: Migrator, database_url: str
) -> None:
    sources = [
        src("1", "CREATE TABLE a (id int)"),
        src("2", "SELECT 1/0"),
        src("3", "CREATE TABLE c (id int)"),
    ]
    report = engine.apply(sources)
    assert [r.status for r in report.results] == ["success", "failed"]
    assert tables(database_url) == {"public.a"}
    # Fails again, the same way: no "dirty" state to force.
    assert engine.apply(sources).failed is not None
    sources[1] = src("2", "SELECT 1")
    assert [r.version for r in engine.apply(sources).results] == ["2", "3"]


def test_verify_sql_passes_on_true_or_no_rows(engine: Migrator) -> None:
    report = engine.apply(
        [
            src("1", "CREATE TABLE a (id int)", verify_sql="SELECT to_regclass('a') IS NOT NULL"),
            src("2", "INSERT INTO a VALUES (1)", verify_sql="SELECT 1 FROM a WHERE id <> 1"),
        ]
    )
    assert report.ok, report.failed


@pytest.mark.parametrize(
    ("verify", "message"),
    [
        ("SELECT count(*) = 2 FROM a", "verification failed: the check returned false, not true"),
        ("SELECT id FROM a", "the check returned 1, not true"),
        ("SELECT id, id FROM a", "the check returned 1 rows of 2 columns"),
        ("SELECT 1/0", "verification failed: division by zero"),
    ],
)
def test_verify_sql_failure_rolls_back(
    engine: Migrator, database_url: str, verify: str, message: str
) -> None:
    report = engine.apply(
        [src("1", "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);", verify_sql=verify)]
    )
    failed = report.failed
    assert failed is not None
    assert message in (failed.error or "")
    assert tables(database_url) == set()
    assert [r["status"] for r in history(database_url)] == ["failed"]


def test_transaction_control_in_a_transactional_migration_is_refused(
    engine: Migrator, database_url: str
) -> None:
    with pytest.raises(TransactionForbidden, match=r"statement 2 \(line 3, COMMIT\)"):
        engine.apply([src("1", "CREATE TABLE a (id int);\n\nCOMMIT;")])
    assert query(database_url, "SELECT to_regnamespace('kubemigrate')") == [(None,)]


def test_statement_timeout_applies(make_engine: object) -> None:
    engine = make_engine(default_statement_timeout=0.2)  # type: ignore[operator]
    failed = engine.apply([src("1", "SELECT pg_sleep(5)")]).failed
    assert failed is not None and failed.sqlstate == "57014"
    own = engine.apply([src("1", "SELECT pg_sleep(0.3)", statement_timeout=2.0)])
    assert own.ok


def test_server_syntax_error_the_parser_accepted(engine: Migrator, database_url: str) -> None:
    # IS JSON is PostgreSQL 16 syntax: the statement splitter (a newer grammar) accepts it, a
    # 15 server refuses the whole query before running any of it, including the commit of the
    # migration before, which travels in the same query.
    if int(query(database_url, "SHOW server_version_num")[0][0]) >= 160000:
        pytest.skip("needs a server older than 16")
    report = engine.apply(
        [
            src("1", "CREATE TABLE a (id int)"),
            src("2", "CREATE TABLE b (id int);\nSELECT '{}' IS JSON;"),
            src("3", "CREATE TABLE c (id int)"),
        ]
    )
    assert [(r.version, r.status) for r in report.results] == [("1", "success"), ("2", "failed")]
    failed = report.results[1]
    assert (failed.sqlstate, failed.line) == ("42601", 2)
    assert tables(database_url) == {"public.a"}
    assert [(r["version"], r["status"]) for r in history(database_url)] == [
        ("1", "success"),
        ("2", "failed"),
    ]


def test_error_at_commit_fails_that_migration(engine: Migrator, database_url: str) -> None:
    report = engine.apply(
        [
            src(
                "1",
                "CREATE TABLE p (id int PRIMARY KEY);\n"
                "CREATE TABLE c (p int REFERENCES p DEFERRABLE INITIALLY DEFERRED);\n"
                "INSERT INTO c VALUES (1);",
            ),
            src("2", "CREATE TABLE d (id int)"),
        ]
    )
    assert [(r.version, r.status) for r in report.results] == [("1", "failed")]
    assert report.results[0].sqlstate == "23503"
    assert tables(database_url) == set()
    assert [(r["version"], r["status"]) for r in history(database_url)] == [("1", "failed")]


def test_a_migration_may_deallocate_prepared_statements(
    engine: Migrator, database_url: str
) -> None:
    report = engine.apply(
        [
            src("1", "CREATE TABLE a (id int)"),
            src("2", "DEALLOCATE ALL;\nCREATE TABLE b (id int);"),
            src("3", "CREATE TABLE c (id int)"),
            src("4", "SELECT 1/0"),
        ]
    )
    assert [r.status for r in report.results] == ["success"] * 3 + ["failed"]
    assert report.results[1].tables_created == ("public.b",)
    assert report.results[2].tables_created == ("public.c",)
    assert [r["status"] for r in history(database_url)] == ["success"] * 3 + ["failed"]
