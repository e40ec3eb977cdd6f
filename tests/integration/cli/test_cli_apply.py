"""apply, status, plan, dry runs and rollbacks, through the real command."""

from __future__ import annotations

import json

import pytest

from integration.cli.cli_helpers import Kubemigrate, Migrations, query, tables

pytestmark = pytest.mark.integration


def three(migrations: Migrations) -> None:
    migrations.write("001_create_users.up.sql", "CREATE TABLE users (id int PRIMARY KEY);")
    migrations.write("001_create_users.down.sql", "DROP TABLE users;")
    migrations.write(
        "002_seed_users.up.sql", "INSERT INTO users SELECT g FROM generate_series(1, 5) g;"
    )
    migrations.write("002_seed_users.down.sql", "DELETE FROM users;")
    migrations.write("010_create_orders.up.sql", "CREATE TABLE orders (id int);")
    migrations.write("README.md", "not a migration")


def test_apply_prints_a_line_per_migration_and_a_summary(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    three(migrations)
    result = kubemigrate("apply")
    assert result.returncode == 0, result
    lines = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert [line.split()[0] for line in lines] == ["001", "002", "010"]
    assert "5 rows" in lines[1]
    assert "seed users" in lines[1]
    assert "Applied 3 migrations" in result.stdout
    assert "schema version 010" in result.stdout
    assert result.stderr == ""
    assert tables(kubemigrate.url) >= {"users", "orders"}

    again = kubemigrate("apply")
    assert again.returncode == 0, again
    assert "Nothing to do" in again.stdout


def test_apply_up_to_a_target(kubemigrate: Kubemigrate, migrations: Migrations) -> None:
    three(migrations)
    result = kubemigrate("apply", "--target", "2")
    assert result.returncode == 0, result
    assert "orders" not in tables(kubemigrate.url)
    assert "schema version 002" in result.stdout


def test_status_table_and_json(kubemigrate: Kubemigrate, migrations: Migrations) -> None:
    three(migrations)
    assert kubemigrate("apply", "--target", "002").returncode == 0

    table = kubemigrate("status")
    assert table.returncode == 0, table
    lines = table.stdout.splitlines()
    header = next(line for line in lines if "Version" in line)
    for column in ("Version", "Description", "State", "Applied at", "Duration", "Rollback"):
        assert column in header
    row = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
        for line in lines
        if line.startswith("| 0")
    }
    assert row["001"][1:3] == ["create users", "Applied"]
    assert row["001"][5] == "yes"
    assert row["010"][2] == "Pending"
    assert row["010"][3] == "-"

    as_json = kubemigrate("status", "--json")
    assert as_json.returncode == 0, as_json
    states = {r["version"]: r for r in json.loads(as_json.stdout)}
    assert states["001"]["state"] == "applied"
    assert states["001"]["rollback_available"] is True
    assert states["001"]["applied_at"]
    assert states["010"]["state"] == "pending"
    assert states["010"]["applied_at"] is None


def test_status_of_an_empty_database(kubemigrate: Kubemigrate, migrations: Migrations) -> None:
    three(migrations)
    result = kubemigrate("status")
    assert result.returncode == 0, result
    assert result.stdout.count("Pending") == 3


def test_plan_lists_pending_in_order_without_running(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    three(migrations)
    assert kubemigrate("apply", "--target", "001").returncode == 0
    result = kubemigrate("plan")
    assert result.returncode == 0, result
    pending = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert pending == ["002", "010"]
    assert "orders" not in tables(kubemigrate.url)

    as_json = kubemigrate("plan", "--json")
    assert json.loads(as_json.stdout)["pending"] == ["002", "010"]


def test_dry_run_changes_nothing(kubemigrate: Kubemigrate, migrations: Migrations) -> None:
    three(migrations)
    result = kubemigrate("apply", "--dry-run")
    assert result.returncode == 0, result
    assert "users" not in tables(kubemigrate.url)
    assert "Pending" in kubemigrate("status").stdout
    assert kubemigrate("apply").returncode == 0


def test_rollback_by_steps_and_to_a_target(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    migrations.write("001_a.up.sql", "CREATE TABLE a (id int);")
    migrations.write("001_a.down.sql", "DROP TABLE a;")
    migrations.write("002_b.up.sql", "CREATE TABLE b (id int);")
    migrations.write("002_b.down.sql", "DROP TABLE b;")
    migrations.write("003_c.up.sql", "CREATE TABLE c (id int);")
    migrations.write("003_c.down.sql", "DROP TABLE c;")
    assert kubemigrate("apply").returncode == 0

    one = kubemigrate("rollback", "--steps", "1")
    assert one.returncode == 0, one
    assert tables(kubemigrate.url) >= {"a", "b"} and "c" not in tables(kubemigrate.url)
    assert "Rolled back 1 migration" in one.stdout

    to_one = kubemigrate("rollback", "--target", "1")
    assert to_one.returncode == 0, to_one
    assert "b" not in tables(kubemigrate.url) and "a" in tables(kubemigrate.url)

    everything = kubemigrate("rollback", "--target", "0")
    assert everything.returncode == 0, everything
    assert not {"a", "b", "c"} & tables(kubemigrate.url)
    states = {r["version"]: r["state"] for r in json.loads(kubemigrate("status", "--json").stdout)}
    assert set(states.values()) == {"rolled_back"}

    assert kubemigrate("apply").returncode == 0
    assert {"a", "b", "c"} <= tables(kubemigrate.url)


def test_rollback_without_down_sql_is_refused_and_changes_nothing(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    migrations.write("001_a.up.sql", "CREATE TABLE a (id int);")
    assert kubemigrate("apply").returncode == 0
    result = kubemigrate("rollback", "--steps", "1")
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "001" in result.stderr
    assert "a" in tables(kubemigrate.url)


@pytest.mark.parametrize("args", [["--target", "1", "--steps", "1"], []])
def test_rollback_needs_exactly_one_of_target_and_steps(
    kubemigrate: Kubemigrate, args: list[str]
) -> None:
    result = kubemigrate("rollback", *args)
    assert result.returncode == 2, result


def test_baseline_records_without_running(kubemigrate: Kubemigrate, migrations: Migrations) -> None:
    three(migrations)
    result = kubemigrate("baseline", "--version", "002")
    assert result.returncode == 0, result
    assert "users" not in tables(kubemigrate.url)
    states = {r["version"]: r["state"] for r in json.loads(kubemigrate("status", "--json").stdout)}
    assert states["001"] == states["002"] == "applied"
    assert states["010"] == "pending"
    applied = kubemigrate("apply")
    assert applied.returncode == 0, applied
    assert tables(kubemigrate.url) == {"orders"}


def test_verbose_shows_more(kubemigrate: Kubemigrate, migrations: Migrations) -> None:
    three(migrations)
    quiet = kubemigrate("apply", "--dry-run")
    loud = kubemigrate("apply", "--dry-run", "--verbose")
    assert loud.returncode == 0, loud
    assert len(loud.output) > len(quiet.output)


def test_history_rows_are_in_the_chosen_schema(
    kubemigrate: Kubemigrate, migrations: Migrations
) -> None:
    three(migrations)
    assert kubemigrate("apply", "--history-schema", "ops").returncode == 0
    rows = query(kubemigrate.url, "SELECT count(*) FROM ops.history WHERE status = 'success'")
    assert rows == [(3,)]
