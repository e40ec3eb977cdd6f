"""Runs of simple migrations travel many to a message: each still commits on its own, records
what a migration run alone records, and a failure stops the run exactly where it happened."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from harness import databases
from integration.engine.conftest import EngineFactory
from integration.engine.engine_helpers import history, query, src, tables
from kubemigrate.engine.errors import InvalidSources, TransactionForbidden
from kubemigrate.engine.migrate.migrator import Migrator


def test_batched_history_rows_match_their_results(engine: Migrator, database_url: str) -> None:
    query(database_url, "CREATE SCHEMA app; CREATE TABLE old (id int PRIMARY KEY)")
    sources = [
        src("1", "CREATE TABLE plain (id int);"),
        src("2", "CREATE TABLE app.qualified (id int);\nCREATE INDEX ON app.qualified (id);"),
        src("3", 'CREATE TABLE "Mixed Case" (id int); -- a comment without a newline'),
        src("4", "CREATE TABLE child (id int REFERENCES old (id));"),  # the catalog decides
        src("5", "CREATE INDEX old_id ON old (id);\nCOMMENT ON TABLE old IS 'old';"),
        src(
            "6",
            "CREATE TABLE b (id int);\nCREATE TABLE a (id int);\n"
            "ALTER TABLE old ADD COLUMN note text;",
        ),
        src("7", ""),
        src("8", 'CREATE TABLE "tàble" (id int);\nCREATE TABLE "back\\slash" (id int);'),
        src("9", "CREATE TABLE g (id int);\nGRANT SELECT ON old TO public;"),
    ]
    report = engine.apply(sources)

    assert report.ok, report.failed
    expected = [
        ["public.plain"],
        ["app.qualified"],
        ['public."Mixed Case"'],
        ["public.child"],
        [],
        ["public.a", "public.b"],
        [],
        ['public."back\\slash"', 'public."tàble"'],
        ["public.g"],
    ]
    assert [list(r.tables_created) for r in report.results] == expected
    # The foreign key adds triggers to old: the catalog counts it altered.
    altered = [[], [], [], ["public.old"], [], ["public.old"], [], [], ["public.old"]]
    assert [list(r.tables_altered) for r in report.results] == altered
    rows = history(database_url)
    assert [r["tables_created"] for r in rows] == expected
    for row, result in zip(rows, report.results, strict=True):
        assert row["status"] == "success" and row["rows_affected"] == 0
        assert row["started_at"] <= row["finished_at"]
        measured = (row["finished_at"] - row["started_at"]).total_seconds() * 1000
        assert row["duration_ms"] == pytest.approx(measured, abs=0.01)
        assert abs(result.started_at - row["started_at"]) < timedelta(milliseconds=1)
        assert abs(result.finished_at - row["finished_at"]) < timedelta(milliseconds=1)
        assert result.duration_seconds * 1000 == pytest.approx(row["duration_ms"], abs=0.01)
        assert row["executed_by"] == "tests" and row["run_id"] == rows[0]["run_id"]
    # Each migration committed on its own: one transaction id per history row.
    xids = query(database_url, "SELECT DISTINCT xmin::text FROM kubemigrate.history")
    assert len(xids) == len(sources)


def test_failure_in_a_later_batch_stops_there(
    make_engine: EngineFactory, database_url: str
) -> None:
    messages: list[str] = []
    engine = make_engine(on_progress=messages.append)
    sources = [
        src(f"{i:02}", f"-- migration {i}\nCREATE TABLE t{i} (id int);") for i in range(1, 41)
    ]
    sources[29] = src(
        "30",
        "-- migration 30\nCREATE TABLE t30 (id int);\n"
        "CREATE TABLE bad (id int REFERENCES missing (id));",
    )

    report = engine.apply(sources)

    assert [r.status for r in report.results] == ["success"] * 29 + ["failed"]
    assert "apply 13..28: 16 migration(s) in one message" in messages
    failed = report.results[-1]
    assert (failed.version, failed.sqlstate) == ("30", "42P01")
    assert (failed.statement_index, failed.line) == (2, 3)
    assert len(tables(database_url)) == 29
    rows = history(database_url)
    assert [(r["version"], r["status"]) for r in rows][-2:] == [("29", "success"), ("30", "failed")]
    assert rows[-1]["error_line"] == 3 and rows[-1]["statement_index"] == 2
    assert rows[-1]["started_at"] <= rows[-1]["finished_at"]

    sources[29] = src("30", "CREATE TABLE t30 (id int);")
    again = engine.apply(sources)
    assert again.ok and again.results[0].version == "30"
    assert len(tables(database_url)) == 40


def test_a_syntax_error_only_the_server_finds(engine: Migrator, database_url: str) -> None:
    """A newer grammar (the parser's: PostgreSQL 18) accepts what an older server refuses; the
    server then rejects the whole message before running any of it."""
    if query(database_url, "SHOW server_version_num")[0][0] >= "170000":
        pytest.skip("needs a server older than the parser's grammar")
    newer = (
        "CREATE TABLE gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED);\n"
        "ALTER TABLE gen ALTER COLUMN b SET EXPRESSION AS (a * 3);"
    )
    sources = [
        src("1", "CREATE TABLE one (id int);"),
        src("2", "CREATE TABLE two (id int);"),
        src("3", newer),
        src("4", "CREATE TABLE four (id int);"),
    ]

    report = engine.apply(sources)

    assert [r.status for r in report.results] == ["success", "success", "failed"]
    failed = report.results[-1]
    assert failed.sqlstate == "42601" and failed.line == 2
    assert tables(database_url) == {"public.one", "public.two"}


def test_lock_timeout_in_a_batch_is_retried_alone(
    make_engine: EngineFactory, database_url: str
) -> None:
    query(database_url, "CREATE TABLE busy (id int)")
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")

        messages: list[str] = []

        def progress(message: str) -> None:
            messages.append(message)
            if "lock not available" in message and not blocker.closed:
                blocker.commit()  # let the retry through

        engine = make_engine(default_lock_timeout=0.05, on_progress=progress)
        report = engine.apply(
            [
                src("1", "CREATE TABLE first (id int);"),
                src("2", "CREATE TABLE second (id int);"),
                src("3", "ALTER TABLE busy ADD COLUMN note text;"),
                src("4", "CREATE TABLE fourth (id int);"),
                src("5", "CREATE TABLE fifth (id int);"),
            ]
        )

    assert report.ok, report.failed
    assert [r.attempts for r in report.results] == [1, 1, 2, 1, 1]
    assert "apply 1..4: 4 migration(s) in one message" in messages
    assert report.results[2].tables_altered == ("public.busy",)
    assert {"public.first", "public.fifth"} <= tables(database_url)
    assert [r["status"] for r in history(database_url)] == ["success"] * 5


def test_batches_either_side_of_migrations_run_alone(engine: Migrator, database_url: str) -> None:
    """Two stretches of batches in one run, with a migration that drops every prepared
    statement of the session in between."""
    report = engine.apply(
        [
            src("1", "CREATE TABLE a (id int);"),
            src("2", "CREATE TABLE b (id int);"),
            src("3", "INSERT INTO a VALUES (1);\nDEALLOCATE ALL;"),
            src("4", "CREATE TABLE c (id int);"),
            src("5", "CREATE TABLE d (id int);"),
            src("6", "INSERT INTO a VALUES (2);"),
            src("7", "CREATE TABLE e (id int);"),
            src("8", "CREATE TABLE f (id int);"),
        ]
    )
    assert report.ok, report.failed
    assert [r.rows_affected for r in report.results] == [0, 0, 1, 0, 0, 1, 0, 0]
    assert tables(database_url) == {f"public.{t}" for t in "abcdef"}
    assert [r["status"] for r in history(database_url)] == ["success"] * 8


@pytest.mark.parametrize(
    ("datestyle", "timezone"),
    [("SQL, DMY", "Africa/Harare"), ("Postgres, MDY", "Asia/Kolkata"), ("German", "UTC")],
)
def test_server_times_whatever_the_date_style(
    engine: Migrator, database_url: str, datestyle: str, timezone: str
) -> None:
    dbname = database_url.rsplit("/", 1)[1]
    query(database_url, f"ALTER DATABASE \"{dbname}\" SET DateStyle = '{datestyle}'")
    query(database_url, f"ALTER DATABASE \"{dbname}\" SET TimeZone = '{timezone}'")
    report = engine.apply(
        [
            src("1", "CREATE TABLE a (id int);"),
            src("2", "CREATE TABLE b (id int);"),
            src("3", "CREATE TABLE c (id int REFERENCES missing (id));"),
        ]
    )
    assert [r.status for r in report.results] == ["success", "success", "failed"]
    rows = query(
        database_url,
        "SELECT extract(epoch FROM started_at)::float8,"
        " extract(epoch FROM finished_at)::float8, duration_ms"
        " FROM kubemigrate.history ORDER BY id",
    )
    for started, finished, duration_ms in rows:
        assert 0 <= finished - started < 5
        assert 0 <= duration_ms < 5000
    assert abs(report.results[0].started_at.timestamp() - rows[0][0]) < 0.001
    states = engine.status([src("1", "CREATE TABLE a (id int);")])
    assert states[0].applied_at is not None


def test_a_caller_failing_on_a_result_cancels_the_batch_in_flight(
    make_engine: EngineFactory, database_url: str
) -> None:
    query(database_url, "CREATE TABLE big AS SELECT g AS v FROM generate_series(1, 1000000) g")

    def stop(result: object) -> None:
        raise RuntimeError("the caller gives up")

    sources = [src(f"{i:02}", f"CREATE TABLE t{i} (id int);") for i in range(1, 31)]
    sources[5] = src("06", "CREATE INDEX slow ON big (v);")  # in the second batch (5..12)
    with pytest.raises(RuntimeError, match="gives up"):
        make_engine().apply(sources, on_result=stop)
    # Cancelled, not left to run until the server notices the client has gone.
    running = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE query LIKE '%%CREATE INDEX slow%%' AND pid <> pg_backend_pid()"
    )
    assert query(database_url, running) == [(0,)]

    applied = [r["version"] for r in history(database_url) if r["status"] == "success"]
    assert applied[:4] == ["01", "02", "03", "04"]
    assert "06" not in applied, "the running batch was cancelled"
    assert tables(database_url) - {"public.big"} == {f"public.t{int(v)}" for v in applied}
    assert query(database_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'slow'") == [(0,)]


def test_sql_with_a_nul_character_is_refused_before_anything_runs(
    engine: Migrator, database_url: str
) -> None:
    with pytest.raises(InvalidSources, match=r"migration 2: .*NUL character"):
        engine.apply(
            [
                src("1", "CREATE TABLE a (id int);"),
                src("2", "CREATE TABLE b (id int); -- \x00 and more"),
            ]
        )
    assert tables(database_url) == set()
    assert query(database_url, "SELECT to_regclass('kubemigrate.history')") == [(None,)]


def test_discard_all_is_refused_and_deallocate_is_survived(
    engine: Migrator, database_url: str
) -> None:
    """DISCARD ALL would release the migration lock; a no-transaction DEALLOCATE ALL drops
    the history's prepared INSERTs, which the run prepares again."""
    with pytest.raises(TransactionForbidden, match="release the migration lock"):
        engine.apply(
            [src("1", "-- kubemigrate: no-transaction\nDISCARD ALL;", transactional=False)]
        )
    report = engine.apply(
        [
            src("1", "CREATE TABLE a (id int);"),
            src("2", "CREATE TABLE b (id int);"),
            src("3", "DEALLOCATE ALL;", transactional=False),
            src("4", "CREATE TABLE c (id int);"),
            src("5", "CREATE TABLE d (id int);"),
        ]
    )
    assert report.ok, report.failed
    assert [r["status"] for r in history(database_url) if r["version"] != "3"] == ["success"] * 4


def test_search_path_into_the_history_schema_records_what_the_catalog_would(
    engine: Migrator, database_url: str
) -> None:
    dbname = database_url.rsplit("/", 1)[1]
    query(database_url, f'ALTER DATABASE "{dbname}" SET search_path = kubemigrate, public')
    report = engine.apply(
        [src("1", "CREATE TABLE a (id int);"), src("2", "CREATE TABLE app_b (id int);")]
    )
    assert report.ok, report.failed
    # The tables went into the history's schema, which the engine never counts as the users'.
    assert [r.tables_created for r in report.results] == [(), ()]


def test_a_lock_on_the_history_is_retried_like_any_lock_timeout(
    make_engine: EngineFactory, database_url: str
) -> None:
    """The INSERT of the history row can meet a lock too (here a migration run alone, on the
    one-at-a-time path): retried like a lock_timeout in the migration's own statements."""
    make_engine().apply([src("1", "CREATE TABLE a (id int);")])
    with psycopg.connect(database_url) as blocker:

        def progress(message: str) -> None:
            if message.startswith("apply 2 "):  # the run is ready: lock its history now
                blocker.execute("LOCK kubemigrate.history IN SHARE MODE")
            elif "lock not available" in message and not blocker.closed:
                blocker.commit()

        report = make_engine(default_lock_timeout=0.05, on_progress=progress).apply(
            [src("1", "CREATE TABLE a (id int);"), src("2", "INSERT INTO a VALUES (1);")]
        )
    assert report.ok, report.failed
    assert report.results[-1].attempts == 2


def test_a_latin1_database(pg_admin_url: str) -> None:
    """Values come back in the database's encoding; text it cannot hold is refused whole,
    and blamed on the migration that holds it."""
    url = pg_admin_url.rsplit("/", 1)[0] + "/review_latin1_" + uuid.uuid4().hex[:8]
    name = url.rsplit("/", 1)[1]
    query(
        pg_admin_url,
        f"CREATE DATABASE \"{name}\" ENCODING 'LATIN1' LC_COLLATE 'C'"
        " LC_CTYPE 'C' TEMPLATE template0",
    )
    try:
        engine = Migrator(url, actor="tests")
        report = engine.apply(
            [
                src("1", 'CREATE TABLE "café" (id int);'),
                src("2", "CREATE TABLE b (id int);"),
                src("3", "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);"),
                src("4", "COMMENT ON TABLE b IS '\u2603';"),
            ]
        )
        assert [r.status for r in report.results] == ["success"] * 3 + ["failed"]
        assert report.results[0].tables_created == ('public."café"',)
        assert report.results[-1].version == "4"
        assert report.results[-1].sqlstate == "22P05"
    finally:
        databases.drop(pg_admin_url, url)
