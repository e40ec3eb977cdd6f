"""Messages that name the cause: COPY FROM STDIN, a connection lost mid-run, who holds the lock
a migration waits for, and a malformed URL (one error class for every engine call)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from harness.kube import wait_for
from integration.cli.cli_helpers import Result, start_cli
from integration.engine.engine_helpers import history, query, src, tables
from kubemigrate.engine.backup.dump import take_backup
from kubemigrate.engine.errors import ConnectionLost, InvalidUrl, TransactionForbidden
from kubemigrate.engine.migrate.migrator import Migrator
from kubemigrate.engine.pg.session import Session

EngineFactory = Callable[..., Migrator]


def test_copy_from_stdin_in_a_no_transaction_migration_is_refused_up_front(
    engine: Migrator, database_url: str
) -> None:
    sources = [
        src("1", "CREATE TABLE a (id int);"),
        src("2", "CREATE TABLE b (id int);\nCOPY b FROM STDIN;", transactional=False),
    ]
    with pytest.raises(TransactionForbidden) as refused:
        engine.apply(sources)
    assert str(refused.value) == (
        "migration 2, statement 2 (line 2, COPY): COPY FROM STDIN / TO STDOUT is not"
        " supported; use INSERT; nothing was run"
    )
    assert tables(database_url) == set()


def test_copy_from_stdin_reaching_the_server_fails_the_statement_and_keeps_the_session(
    database_url: str,
) -> None:
    with Session.connect(database_url, application_name="t") as session:
        ran = session.script("CREATE TABLE a (id int);COPY a FROM STDIN;CREATE TABLE b ()")
        assert ran.error is not None and ran.failed_at == 1
        assert ran.error.message.startswith("COPY FROM STDIN / TO STDOUT is not supported")
        assert session.execute("SELECT 1") == [(1,)]
    assert tables(database_url) == set()  # one message: one implicit transaction


@pytest.mark.parametrize("transactional", [True, False])
def test_a_migration_ending_its_own_backend_is_named(
    engine: Migrator, database_url: str, transactional: bool
) -> None:
    sources = [
        src("1", "CREATE TABLE a (id int);"),
        src(
            "2",
            "SELECT 1;\nSELECT pg_terminate_backend(pg_backend_pid());",
            transactional=transactional,
        ),
    ]
    with pytest.raises(ConnectionLost) as lost:
        engine.apply(sources)
    message = str(lost.value)
    assert "during apply of migration 2" in message, message
    if not transactional:
        assert "migration 2, statement 2 (line 2, SELECT)" in message
    assert "terminating connection due to administrator command [57P01]" in message
    assert "cannot connect" not in message
    assert tables(database_url) == {"public.a"}
    assert engine.apply([sources[0]]).ok


def test_a_server_that_goes_away_mid_run_is_named(
    make_engine: EngineFactory, database_url: str
) -> None:
    sources = [src("1", "CREATE TABLE a (id int);"), src("2", "SELECT pg_sleep(30);")]

    def terminate() -> None:
        deadline = threading.Event()
        while not deadline.wait(0.05):
            if query(
                database_url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE '%%pg_sleep(30)%%'"
                " AND pid <> pg_backend_pid()",
            ):
                return

    killer = threading.Thread(target=terminate)
    killer.start()
    with pytest.raises(ConnectionLost) as lost:
        make_engine().apply(sources)
    killer.join(10)
    assert "during apply of migration 2" in str(lost.value)
    assert [r["version"] for r in history(database_url) if r["status"] == "success"] == ["1"]


def _hold(database_url: str, table: str, application_name: str) -> psycopg.Connection:
    holder = psycopg.connect(database_url, autocommit=True, application_name=application_name)
    holder.execute("BEGIN")
    holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return holder


@pytest.mark.parametrize("transactional", [True, False])
def test_lock_timeout_failures_name_who_holds_the_lock(
    make_engine: EngineFactory, database_url: str, transactional: bool
) -> None:
    messages: list[str] = []
    engine = make_engine(
        default_lock_timeout=0.2, lock_retry_attempts=2, on_progress=messages.append
    )
    query(database_url, "CREATE TABLE a (id int)")
    with _hold(database_url, "a", "the-blocker") as holder:
        pid = holder.info.backend_pid
        failed = engine.apply(
            [src("1", "ALTER TABLE a ADD COLUMN b int;", transactional=transactional)]
        ).failed
        holder.execute("ROLLBACK")
    assert failed is not None and failed.sqlstate == "55P03" and failed.attempts == 2
    assert failed.blocked_by is not None
    assert failed.blocked_by.startswith(
        f"pid {pid} (the-blocker, idle in transaction, query started "
    )
    assert failed.error is not None and failed.error.endswith(f"; blocked by {failed.blocked_by}")
    assert history(database_url)[-1]["error"] == failed.error
    assert any(f"held by pid {pid} (the-blocker" in m for m in messages), messages


def test_a_retry_that_succeeds_still_says_who_blocked(
    make_engine: EngineFactory, database_url: str
) -> None:
    engine = make_engine(default_lock_timeout=0.2, lock_retry_attempts=20)
    query(database_url, "CREATE TABLE a (id int)")
    sources = [
        src("1", "CREATE TABLE b (id int);"),
        src("2", "ALTER TABLE a ADD b int;"),
        src("3", "CREATE TABLE c (id int);"),
    ]  # a batch: the locked one retried alone
    with _hold(database_url, "a", "the-blocker") as holder:
        release = threading.Timer(0.7, holder.execute, ["ROLLBACK"])
        release.start()
        report = engine.apply(sources)
        release.join()
    assert report.ok, report.failed
    second = report.results[1]
    assert second.attempts > 1
    assert second.blocked_by is not None and "(the-blocker, " in second.blocked_by


def test_a_malformed_url_is_one_error_class_for_migrations_and_backups(
    tmp_path: Path,
) -> None:
    url = "postgresql://app:s3cret@127.0.0.1/db?no_such_option=1"
    with pytest.raises(InvalidUrl) as migrating:
        Migrator(url).apply([src("1", "SELECT 1")])
    with pytest.raises(InvalidUrl) as backing_up:
        take_backup(url, tmp_path / "x.dump")
    for caught in (migrating, backing_up):
        assert "s3cret" not in str(caught.value)
        assert "is not a PostgreSQL URL" in str(caught.value)


def test_the_cli_says_who_blocked_a_migration_that_then_succeeded(
    database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "1_alter.up.sql").write_text(
        "-- kubemigrate: lock-timeout=200ms\nALTER TABLE a ADD b int;\n"
    )
    query(database_url, "CREATE TABLE a (id int)")
    with _hold(database_url, "a", "the-blocker") as holder:
        cli = start_cli("apply", str(directory), "--database-url", database_url)
        # Released only once the CLI has waited (and timed out) at least once: a release on a
        # timer could come before a slow start connects at all.
        waiting = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        wait_for(lambda: query(database_url, waiting)[0][0] > 0, timeout=60, what="a lock wait")
        time.sleep(0.5)  # longer than the migration's lock_timeout (200ms)
        holder.execute("ROLLBACK")
        stdout, stderr = cli.communicate(timeout=60)
    result = Result(cli.returncode, stdout, stderr)
    assert result.returncode == 0, result
    assert "attempts" in result.stdout
    assert "waited on a lock held by pid " in result.stdout
    assert "(the-blocker, " in result.stdout
