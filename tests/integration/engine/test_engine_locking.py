"""Locks: lock_timeout retries, the advisory lock between runners, and runners that die."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from integration.engine.engine_helpers import history, query, src, tables
from kubemigrate.engine.errors import LockTimeout
from kubemigrate.engine.migrate.locking import lock_key
from kubemigrate.engine.migrate.migrator import Migrator
from kubemigrate.engine.migrate.results import RunReport


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_lock_timeout_is_retried_until_the_lock_is_free(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    engine = make_engine(default_lock_timeout=0.1, lock_retry_attempts=30)
    engine.apply([src("1", "CREATE TABLE a (id int)")])
    with psycopg.connect(database_url, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        release = threading.Timer(0.6, blocker.execute, ["ROLLBACK"])
        release.start()
        try:
            report = engine.apply(
                [src("1", "CREATE TABLE a (id int)"), src("2", "ALTER TABLE a ADD COLUMN b int")]
            )
        finally:
            release.join()
    assert report.ok, report.failed
    assert report.results[0].attempts > 1
    assert history(database_url)[-1]["attempts"] == report.results[0].attempts


def test_lock_timeout_fails_after_the_last_attempt(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    engine = make_engine(default_lock_timeout=0.05, lock_retry_attempts=3)
    engine.apply([src("1", "CREATE TABLE a (id int)")])
    sources = [
        src("1", "CREATE TABLE a (id int)"),
        src("2", "CREATE TABLE b (id int);\nALTER TABLE a ADD COLUMN b int;"),
    ]
    with psycopg.connect(database_url, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        report = engine.apply(sources)
        blocker.execute("ROLLBACK")
    failed = report.failed
    assert failed is not None
    assert (failed.sqlstate, failed.attempts, failed.statement_index) == ("55P03", 3, 2)
    assert tables(database_url) == {"public.a"}
    assert history(database_url)[-1]["attempts"] == 3
    assert engine.apply(sources).ok  # nothing to clean up


def test_other_errors_are_not_retried(make_engine: Callable[..., Migrator]) -> None:
    engine = make_engine(lock_retry_attempts=5)
    failed = engine.apply([src("1", "SELECT 1/0")]).failed
    assert failed is not None and failed.attempts == 1


def test_three_runners_at_once_on_a_new_database(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    sources = [
        src(str(i), f"CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES ({i});")
        for i in range(1, 31)
    ]
    sources.append(src("31", "CREATE INDEX CONCURRENTLY t1_id ON t1 (id);", transactional=False))
    start = threading.Barrier(3)
    reports: list[RunReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        engine = make_engine()
        start.wait()
        try:
            reports.append(engine.apply(sources))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(reports) == 3 and all(r.ok for r in reports)
    assert sorted(len(r.results) for r in reports) == [0, 0, 31]
    assert all(r.schema_version == "31" for r in reports)
    done = [r["version"] for r in history(database_url) if r["status"] == "success"]
    assert sorted(done, key=int) == [str(i) for i in range(1, 32)]
    assert len(tables(database_url)) == 30


def test_a_waiting_runner_reports_who_holds_the_lock(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    messages: list[str] = []
    engine = make_engine(lock_wait_seconds=0.5, on_progress=messages.append)
    with psycopg.connect(database_url, autocommit=True, application_name="other-runner") as other:
        other.execute("SELECT pg_advisory_lock(%s)", [lock_key("kubemigrate")])
        pid = other.info.backend_pid
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            engine.apply([src("1", "CREATE TABLE a (id int)")])
        assert time.monotonic() - started >= 0.5
        assert "other-runner" in str(caught.value) and f"pid {pid}" in str(caught.value)
        assert any(
            m.startswith("waiting for the migration lock, held by other-runner") for m in messages
        )

        release = threading.Timer(
            0.3, other.execute, ["SELECT pg_advisory_unlock(%s)", [lock_key("kubemigrate")]]
        )
        release.start()
        patient = make_engine(lock_wait_seconds=10)
        report = patient.apply([src("1", "CREATE TABLE a (id int)")])
        release.join()
    assert report.ok
    assert tables(database_url) == {"public.a"}


def test_status_does_not_wait_for_the_lock(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    engine = make_engine(lock_wait_seconds=0.1)
    engine.apply([src("1", "CREATE TABLE a (id int)")])
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [lock_key("kubemigrate")])
        assert [s.state for s in engine.status([src("1", "CREATE TABLE a (id int)")])] == [
            "applied"
        ]


_RUNNER = textwrap.dedent("""
    import sys
    from kubemigrate.engine.migrate.migrator import Migrator
    from kubemigrate.engine.migrate.sources import MigrationSource
    Migrator(sys.argv[1]).apply([MigrationSource(
        "1", "slow", "CREATE TABLE a (id int);\\nSELECT pg_sleep(60);")])
""")


def _kill_9_while_sleeping(database_url: str, program: str, *args: str) -> None:
    """Run program (python -c) with the URL and args, SIGKILL it once its migration sits in
    pg_sleep, and wait until the backend has noticed (client_connection_check_interval),
    rolled back and dropped the session lock."""
    runner = subprocess.Popen([sys.executable, "-c", program, database_url, *args])
    try:
        _wait_for(
            lambda: (
                query(
                    database_url,
                    """
            SELECT count(*) FROM pg_stat_activity
            WHERE application_name = 'kubemigrate' AND query LIKE '%%pg_sleep%%'
              AND state = 'active'""",
                )
                == [(1,)]
            )
        )
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
    finally:
        if runner.poll() is None:
            runner.kill()
    _wait_for(
        lambda: (
            query(database_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            == [(0,)]
        )
    )


def test_a_killed_runner_leaves_nothing_applied_and_no_lock(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    _kill_9_while_sleeping(database_url, _RUNNER)
    assert tables(database_url) == set()
    assert history(database_url) == []

    report = make_engine(lock_wait_seconds=1).apply([src("1", "CREATE TABLE a (id int);")])
    assert report.ok
    assert tables(database_url) == {"public.a"}


_NO_TRANSACTION_RUNNER = textwrap.dedent("""
    import sys
    from kubemigrate.engine.migrate.migrator import Migrator
    from kubemigrate.engine.migrate.sources import MigrationSource
    Migrator(sys.argv[1]).apply([MigrationSource(
        "1", "index", sys.argv[2], transactional=False)])
""")


def test_a_killed_no_transaction_migration_is_incomplete_then_rerun(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    query(database_url, "CREATE TABLE a (id int)")
    slow = "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_id ON a (id);\nSELECT pg_sleep(60);"
    _kill_9_while_sleeping(database_url, _NO_TRANSACTION_RUNNER, slow)
    engine = make_engine()
    fixed = src(
        "1",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_id ON a (id);\nSELECT pg_sleep(0);",
        transactional=False,
    )
    # The source changed, but an incomplete version is not applied: no drift, it runs again.
    assert [s.state for s in engine.status([fixed])] == ["incomplete"]
    assert engine.apply([fixed]).ok
    assert [s.state for s in engine.status([fixed])] == ["applied"]
    assert [r["status"] for r in history(database_url)] == ["pending", "pending", "success"]


def test_a_migration_releasing_advisory_locks_does_not_let_a_second_runner_in(
    make_engine: Callable[..., Migrator], database_url: str
) -> None:
    """pg_advisory_unlock_all() (or pg_advisory_unlock of the lock's key) in a migration
    releases the lock on the migrating connection; a second runner must still wait."""
    query(database_url, "CREATE TABLE log (version text)")
    key = lock_key("kubemigrate")
    sources = [
        src("1", "SELECT pg_advisory_unlock_all();"),
        src(
            "2",
            f"SELECT pg_advisory_unlock({key});\nSELECT pg_sleep(1);\n"
            "INSERT INTO log VALUES ('2');",
        ),
        src("3", "INSERT INTO log VALUES ('3');"),
    ]
    reports: list[RunReport] = []
    first = threading.Thread(target=lambda: reports.append(make_engine().apply(sources)))
    first.start()
    try:
        _wait_for(
            lambda: (
                query(
                    database_url,
                    """
            SELECT count(*) FROM pg_stat_activity
            WHERE application_name = 'kubemigrate' AND query LIKE '%%pg_sleep%%'
              AND state = 'active'""",
                )
                == [(1,)]
            )
        )
        second = make_engine(lock_wait_seconds=10).apply(sources)
    finally:
        first.join(30)
    assert reports and reports[0].ok and second.ok
    assert len(reports[0].results) == 3 and second.results == ()
    assert sorted(query(database_url, "SELECT version FROM log")) == [("2",), ("3",)]
    assert [r["version"] for r in history(database_url) if r["status"] == "success"] == [
        "1",
        "2",
        "3",
    ]
