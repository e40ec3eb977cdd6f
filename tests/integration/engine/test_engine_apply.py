"""Applying migrations: order, history rows, statistics, targets, re-runs."""

from __future__ import annotations

import uuid

from integration.engine.engine_helpers import history, query, src, tables
from kubemigrate import __version__
from kubemigrate.engine.migrate.migrator import Migrator
from kubemigrate.engine.migrate.results import Origin


def test_applies_in_version_order_with_one_history_row_each(
    engine: Migrator, database_url: str
) -> None:
    # "2" < "10" numerically; given out of order on purpose.
    sources = [
        src("10", "ALTER TABLE items ADD COLUMN price numeric;"),
        src("1", "CREATE TABLE items (id int PRIMARY KEY, name text);", "DROP TABLE items"),
        src("2", "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');"),
    ]
    report = engine.apply(sources)

    assert report.ok
    assert [r.version for r in report.results] == ["1", "2", "10"]
    assert report.schema_version == "10"
    first, second, third = report.results
    assert first.tables_created == ("public.items",)
    assert second.rows_affected == 3
    assert third.tables_altered == ("public.items",)
    rows = history(database_url)
    assert [(r["version"], r["kind"], r["status"]) for r in rows] == [
        ("1", "apply", "success"),
        ("2", "apply", "success"),
        ("10", "apply", "success"),
    ]
    row = rows[0]
    assert row["checksum"] == sources[1].checksum
    assert row["checksum"].startswith("sha256:")
    assert row["tables_created"] == ["public.items"]
    assert row["has_rollback"] is True
    assert rows[1]["has_rollback"] is False
    assert rows[1]["rows_affected"] == 3
    assert row["engine_version"] == __version__
    assert row["executed_by"] == "tests"
    assert row["run_id"] == uuid.UUID(report.run_id)
    assert row["duration_ms"] >= 0
    assert row["finished_at"] >= row["started_at"]
    assert row["resource_name"] is None


def test_origin_is_recorded(make_engine: object, database_url: str) -> None:
    engine = make_engine(origin=Origin("add-users", "1234-uid", 7))  # type: ignore[operator]
    engine.apply([src("1", "CREATE TABLE users (id int)")])
    row = history(database_url)[0]
    assert (row["resource_name"], row["resource_uid"], row["resource_generation"]) == (
        "add-users",
        "1234-uid",
        7,
    )


def test_rerun_does_nothing(engine: Migrator, database_url: str) -> None:
    sources = [src(str(i), f"CREATE TABLE t{i} (id int)") for i in range(1, 6)]
    engine.apply(sources)
    again = engine.apply(sources)
    assert again.ok and again.results == ()
    assert again.schema_version == "5"
    assert len(history(database_url)) == 5


def test_target_limits_what_is_applied(engine: Migrator, database_url: str) -> None:
    sources = [src(str(i), f"CREATE TABLE t{i} (id int)") for i in range(1, 6)]
    report = engine.apply(sources, target="3")
    assert [r.version for r in report.results] == ["1", "2", "3"]
    assert tables(database_url) == {"public.t1", "public.t2", "public.t3"}
    assert [r.version for r in engine.apply(sources).results] == ["4", "5"]


def test_empty_migration_is_a_valid_no_op(engine: Migrator, database_url: str) -> None:
    report = engine.apply(
        [src("1", ""), src("2", "-- only a comment\n"), src("3", "CREATE TABLE t (id int)")]
    )
    assert report.ok
    assert [r.status for r in report.results] == ["success"] * 3
    assert [r["status"] for r in history(database_url)] == ["success"] * 3


def test_nothing_to_apply_creates_nothing(engine: Migrator, database_url: str) -> None:
    report = engine.apply([])
    assert report.ok and report.results == () and report.schema_version is None
    assert query(database_url, "SELECT to_regnamespace('kubemigrate')") == [(None,)]


def test_history_schema_is_configurable(make_engine: object, database_url: str) -> None:
    engine = make_engine(history_schema="Audit Trail")  # type: ignore[operator]
    engine.apply([src("1", "CREATE TABLE t (id int)")])
    assert [r["version"] for r in history(database_url, "Audit Trail")] == ["1"]
    assert query(database_url, "SELECT to_regnamespace('kubemigrate')") == [(None,)]
    assert [s.state for s in engine.status([src("1", "CREATE TABLE t (id int)")])] == ["applied"]


def test_status_lists_every_version_with_its_state(engine: Migrator) -> None:
    sources = [
        src("1", "CREATE TABLE a (id int)", "DROP TABLE a"),
        src("2", "CREATE TABLE b (id int)"),
        src("3", "SELECT 1/0"),
        src("4", "CREATE TABLE d (id int)"),
    ]
    engine.apply(sources)
    states = engine.status(sources[:1] + sources[2:])  # 2 is missing from the sources
    assert [(s.version, s.state) for s in states] == [
        ("1", "applied"),
        ("2", "missing"),
        ("3", "failed"),
        ("4", "pending"),
    ]
    one, _, three, four = states
    assert one.rollback_available and one.applied_at is not None
    assert one.checksum == sources[0].checksum
    assert three.sqlstate == "22012" and three.last_error == "division by zero"
    assert four.checksum == sources[3].checksum and four.applied_at is None


def test_versions_that_mean_the_same_are_one_version(engine: Migrator) -> None:
    engine.apply([src("001", "CREATE TABLE a (id int)")])
    assert engine.apply([src("1", "CREATE TABLE a (id int)")]).results == ()


def test_statistics_cover_created_altered_and_rows(engine: Migrator) -> None:
    report = engine.apply(
        [
            src("1", "CREATE TABLE a (id int PRIMARY KEY);\nCREATE TABLE b (id int);"),
            src(
                "2",
                "ALTER TABLE a ALTER COLUMN id SET DEFAULT 0;\n"
                "INSERT INTO b SELECT generate_series(1, 10);\nUPDATE b SET id = id + 1;",
            ),
            src("3", "CREATE TABLE c AS SELECT * FROM b;\nDROP TABLE b;"),
            src("4", "ALTER TABLE c RENAME TO d;"),
        ]
    )
    one, two, three, four = report.results
    assert one.tables_created == ("public.a", "public.b")
    assert two.tables_altered == ("public.a",) and two.rows_affected == 20
    assert three.tables_created == ("public.c",) and three.tables_dropped == ("public.b",)
    assert three.rows_affected == 10
    assert four.tables_altered == ("public.d",)


def test_session_settings_do_not_leak_into_later_migrations(
    engine: Migrator, database_url: str
) -> None:
    report = engine.apply(
        [
            src("1", "CREATE SCHEMA app;\nSET search_path TO app;\nCREATE TABLE a (id int);"),
            src("2", "CREATE TABLE b (id int);"),
            src("3", "SET statement_timeout = '1ms';", transactional=False),
            src("4", "SELECT pg_sleep(0.05);"),
        ]
    )
    assert report.ok, report.failed
    assert report.results[0].tables_created == ("app.a",)
    assert report.results[1].tables_created == ("public.b",)
    assert tables(database_url) == {"app.a", "public.b"}
