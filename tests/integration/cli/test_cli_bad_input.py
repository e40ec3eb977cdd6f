"""The issue's bad inputs, end to end: each refused or failed with one clear line, safely."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from integration.cli.cli_helpers import Kubemigrate, Migrations, query, tables

pytestmark = pytest.mark.integration


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_syntax_error_in_50_of_100_applies_49_and_resumes_after_the_fix(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    for i in range(1, 101):
        migrations.write(f"{i:03d}_create_t{i}.up.sql", f"CREATE TABLE t{i} (id int);\n")
    broken = migrations.write(
        "050_create_t50.up.sql", "-- the fiftieth\nCREATE TABLE t50 (id int);\nSELEC 1;\n"
    )

    failed = kubemigrate("apply")
    assert failed.returncode == 1, failed
    error = one_error_line(failed.stderr)
    assert "050" in error
    assert "42601" in error  # syntax_error
    assert "line 3" in error
    assert "SELEC" in error
    created = tables(kubemigrate.url)
    assert {f"t{i}" for i in range(1, 50)} <= created
    assert not {f"t{i}" for i in range(50, 101)} & created
    states = {r["version"]: r["state"] for r in json.loads(kubemigrate("status", "--json").stdout)}
    assert states["049"] == "applied" and states["050"] == "failed" and states["051"] == "pending"

    broken.write_text("-- the fiftieth\nCREATE TABLE t50 (id int);\nSELECT 1;\n")
    resumed = kubemigrate("apply")
    assert resumed.returncode == 0, resumed
    ran = [line.split()[0] for line in resumed.stdout.splitlines() if line.startswith("  ")]
    assert ran == [f"{i:03d}" for i in range(50, 101)]
    assert {f"t{i}" for i in range(1, 101)} <= tables(kubemigrate.url)


def test_runtime_error_reports_sqlstate_statement_and_line(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    migrations.write(
        "001_a.up.sql",
        "CREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1);\nINSERT INTO missing VALUES (1);\n",
    )
    result = kubemigrate("apply")
    assert result.returncode == 1, result
    error = one_error_line(result.stderr)
    assert "42P01" in error  # undefined_table
    assert "statement 3" in error and "line 4" in error
    assert "a" not in tables(kubemigrate.url)  # the whole migration rolled back


def test_statement_refused_in_a_transaction_is_caught_before_the_database_is_touched(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    migrations.write("001_a.up.sql", "CREATE TABLE a (id int);")
    migrations.write(
        "002_idx.up.sql",
        "CREATE TABLE b (id int);\n-- needs no-transaction\n"
        "CREATE INDEX CONCURRENTLY b_id ON b (id);\n",
    )
    result = kubemigrate("apply")
    assert result.returncode == 2, result
    error = one_error_line(result.stderr)
    assert "002" in error and "CREATE INDEX CONCURRENTLY" in error and "line 3" in error
    assert tables(kubemigrate.url) == set()
    assert not _history_rows(kubemigrate.url)


def _history_rows(url: str) -> list[tuple[object, ...]]:
    if query(url, "SELECT to_regclass('kubemigrate.history')") == [(None,)]:
        return []
    return query(url, "SELECT version, kind, status FROM kubemigrate.history")


def test_no_transaction_migration_runs_concurrent_index(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    migrations.write("001_a.up.sql", "CREATE TABLE a (id int);")
    migrations.write(
        "002_idx.up.sql",
        "-- kubemigrate: no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
    )
    result = kubemigrate("apply")
    assert result.returncode == 0, result
    assert query(
        kubemigrate.url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id'::regclass"
    ) == [(True,)]


def test_edited_applied_migration_is_drift_until_repaired(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    first = migrations.write("001_a.up.sql", "CREATE TABLE a (id int);")
    assert kubemigrate("apply").returncode == 0
    first.write_text("CREATE TABLE a (id bigint);")
    migrations.write("002_b.up.sql", "CREATE TABLE b (id int);")

    for command in ("apply", "validate"):
        refused = kubemigrate(command)
        assert refused.returncode == 4, refused
        assert "001" in one_error_line(refused.stderr) or "001" in refused.stderr
    assert "b" not in tables(kubemigrate.url)
    states = {r["version"]: r["state"] for r in json.loads(kubemigrate("status", "--json").stdout)}
    assert states["001"] == "drifted"

    repaired = kubemigrate("repair")
    assert repaired.returncode == 0, repaired
    assert "001" in repaired.stdout
    assert kubemigrate("validate").returncode == 0
    applied = kubemigrate("apply")
    assert applied.returncode == 0, applied
    assert "b" in tables(kubemigrate.url)


def test_crlf_checkout_is_not_drift(kubemigrate: Kubemigrate, migrations: Migrations) -> None:
    file = migrations.write("001_a.up.sql", "CREATE TABLE a (id int);\nSELECT 1;\n")
    assert kubemigrate("apply").returncode == 0
    file.write_bytes(b"CREATE TABLE a (id int);\r\nSELECT 1;\r\n")
    assert kubemigrate("validate").returncode == 0


@pytest.mark.parametrize(
    ("files", "fragments"),
    [
        ({"001_a.up.sql": "SELECT 1;", "1_b.up.sql": "SELECT 1;"}, ["duplicate version", "1_b"]),
        (
            {"001_a.up.sql": "SELECT 1;", "add_users.sql": "SELECT 1;"},
            ["add_users.sql", "matches no migration pattern"],
        ),
        (
            {"001_a.up.sql": "SELECT 1;", "002_b.down.sql": "SELECT 1;"},
            ["002_b.down.sql", "no up file"],
        ),
    ],
)
def test_bad_directory_is_refused_before_anything_runs(
    kubemigrate: Kubemigrate, migrations: Migrations, files: dict[str, str], fragments: list[str]
) -> None:
    for name, sql in files.items():
        migrations.write(name, sql)
    for command in ("apply", "validate", "status", "plan"):
        result = kubemigrate(command)
        assert result.returncode == 2, result
        error = one_error_line(result.stderr)
        for fragment in fragments:
            assert fragment in error
        assert result.stdout == ""
    assert query(
        kubemigrate.url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'kubemigrate'"
    ) == [(0,)]


def test_missing_directory(kubemigrate: Kubemigrate, migrations: Migrations) -> None:
    migrations.path.rmdir()
    result = kubemigrate("apply")
    assert result.returncode == 2, result
    assert "does not exist" in one_error_line(result.stderr)


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


_ADVISORY = (
    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
    "WHERE l.locktype = 'advisory' AND d.datname = %s"
)


def _kill_9_apply(kubemigrate: Kubemigrate, ready: object, what: str) -> None:
    """Start ``apply``, SIGKILL it once ready() holds, then wait for its lock to go."""
    dbname = kubemigrate.url.rsplit("/", 1)[1]
    process = kubemigrate.start("apply")
    try:
        _wait_for(ready, 60, what)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    _wait_for(
        lambda: query(kubemigrate.url, _ADVISORY, [dbname]) == [(0,)],
        10,
        "the killed runner's advisory lock to go",
    )


def test_kill_9_during_a_long_migration_leaves_nothing_applied_and_no_lock(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    migrations.write("001_a.up.sql", "CREATE TABLE a (id int);")
    migrations.write("002_slow.up.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n")
    dbname = kubemigrate.url.rsplit("/", 1)[1]
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
        "AND query LIKE '%%pg_sleep(30)%%' AND pid <> pg_backend_pid()"
    )

    _kill_9_apply(
        kubemigrate,
        lambda: query(kubemigrate.url, sleeping, [dbname]) == [(1,)],
        "the slow migration to run",
    )

    assert "slow" not in tables(kubemigrate.url)
    migrations.write("002_slow.up.sql", "CREATE TABLE slow (id int);\n")  # fixed, and fast
    rerun = kubemigrate("apply")
    assert rerun.returncode == 0, rerun
    assert {"a", "slow"} <= tables(kubemigrate.url)


def test_kill_9_during_a_batched_run_leaves_each_migration_whole(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    """Killed while batches of DDL are in flight: every migration is applied with its history
    row or not at all, in order, the lock goes, and a re-run finishes the rest."""
    count = 2000
    for i in range(1, count + 1):
        migrations.write(f"{i:04d}_t{i}.up.sql", f"CREATE TABLE t{i} (id int);\n")
    applied = (
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'kubemigrate' AND tablename = 'history'"
    )
    succeeded = (
        "SELECT version FROM kubemigrate.history WHERE kind = 'apply' AND status = 'success'"
    )

    _kill_9_apply(
        kubemigrate,
        lambda: (
            query(kubemigrate.url, applied) == [(1,)]
            and len(query(kubemigrate.url, succeeded)) >= 50
        ),
        "the first batches to commit",
    )

    done = sorted(int(v) for (v,) in query(kubemigrate.url, succeeded))
    assert done == list(range(1, len(done) + 1)), "applied in order, none twice"
    assert len(done) < count, "killed before the end"
    assert tables(kubemigrate.url) == {f"t{i}" for i in done}
    rerun = kubemigrate("apply")
    assert rerun.returncode == 0, rerun
    assert len(tables(kubemigrate.url)) == count
    assert len(query(kubemigrate.url, succeeded)) == count
