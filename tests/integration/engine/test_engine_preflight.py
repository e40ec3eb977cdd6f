"""Preflight checks against a real database: each check can fail, and says why."""

from __future__ import annotations

import json

import psycopg

from harness import databases, postgres
from kubemigrate.engine.migrate.migrator import Migrator
from kubemigrate.engine.migrate.preflight import MAX_REPORT_BYTES, run_preflight
from kubemigrate.engine.migrate.sources import MigrationSource

ONE = MigrationSource("1", "users", "CREATE TABLE users (id int);")
TWO = MigrationSource(
    "2",
    "emails",
    "ALTER TABLE users ADD COLUMN email text;",
    down_sql="ALTER TABLE users DROP COLUMN email;",
)


def checks(report: object) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.message) for c in report.checks}  # type: ignore[attr-defined]


def test_all_pass_on_a_ready_database(engine: Migrator, database_url: str) -> None:
    engine.apply([ONE])
    report = run_preflight(
        engine, database_url, TWO, requires=["1"], expected={"1": ONE.checksum}, dry_run=True
    )
    assert report.ok, report
    assert report.server_version and report.server_version.startswith("15")
    found = checks(report)
    assert set(found) == {
        "connectivity",
        "history",
        "dependencies",
        "drift",
        "lock-blockers",
        "long-transactions",
        "dry-run",
    }
    assert report.dry_run["tablesAltered"] == ["public.users"]
    with psycopg.connect(database_url) as conn:  # the dry run changed nothing
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        ).fetchall()
    assert columns == [("id",)]


def test_missing_requirement_and_drift_fail(engine: Migrator, database_url: str) -> None:
    engine.apply([ONE])
    report = run_preflight(
        engine, database_url, TWO, requires=["1", "1.5"], expected={"1": "sha256:" + "0" * 64}
    )
    found = checks(report)
    assert found["dependencies"] == (False, "not applied yet: 1.5")
    assert found["drift"][0] is False and "1 (applied sha256:" in found["drift"][1]
    assert not report.ok
    assert report.retryable is False  # drift needs a change, waiting will not help


def test_a_session_holding_a_lock_on_the_table_blocks(engine: Migrator, database_url: str) -> None:
    engine.apply([ONE])
    with psycopg.connect(database_url, application_name="long-report") as holder:
        holder.execute("SELECT * FROM users")  # AccessShareLock, held until the transaction ends
        report = run_preflight(engine, database_url, TWO, long_transaction_seconds=0)
    found = checks(report)
    assert found["lock-blockers"][0] is False
    assert "long-report" in found["lock-blockers"][1]
    assert "AccessShareLock on users" in found["lock-blockers"][1]
    assert found["long-transactions"][0] is True  # reported, but only blocks concurrent builds
    assert report.retryable is True


def test_old_transactions_block_a_concurrent_index_build(
    engine: Migrator, database_url: str
) -> None:
    engine.apply([ONE])
    concurrent = MigrationSource(
        "2", "index", "CREATE INDEX CONCURRENTLY users_id ON users (id);", transactional=False
    )
    with psycopg.connect(database_url, application_name="idle-in-tx") as holder:
        holder.execute("SELECT 1")
        report = run_preflight(engine, database_url, concurrent, long_transaction_seconds=0)
    found = checks(report)
    assert found["long-transactions"][0] is False
    assert "idle-in-tx" in found["long-transactions"][1]


def test_unreachable_database_is_one_check_and_fits_a_termination_message(engine: Migrator) -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere"
    report = run_preflight(Migrator(url, connect_timeout=2), url, ONE)
    assert [c.name for c in report.checks] == ["connectivity"]
    assert not report.ok and report.retryable
    text = report.to_json()
    assert "s3cret-pw" not in text
    assert len(text.encode()) <= MAX_REPORT_BYTES
    assert json.loads(text)["ok"] is False
    assert report.reason == json.loads(text)["reason"] == "ConnectionFailed"


def test_a_refused_login_and_a_value_that_is_no_url_are_named(
    database_url: str, pg_admin_url: str
) -> None:
    """So that the operator retries them a bounded number of times, unlike an outage."""
    databases.ensure_role(pg_admin_url, postgres.PASSWORD_ROLE, "the-right-one")
    url = databases.with_user(database_url, postgres.PASSWORD_ROLE, "wrong-one")
    report = run_preflight(Migrator(url), url, ONE)
    assert (report.ok, report.retryable, report.reason) == (False, True, "AuthenticationFailed")
    assert "wrong-one" not in report.to_json()
    token = "TOPSECRET-token"
    report = run_preflight(Migrator(token), token, ONE)
    assert report.reason == "InvalidDatabaseUrl"
    assert token not in report.to_json()
