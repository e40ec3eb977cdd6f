"""``kubemigrate run-set`` straight from the command line: the result it leaves for the operator
(its termination log) for an apply, a rollback, a failing migration and a bad target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from integration.cli.cli_helpers import Kubemigrate, Migrations, tables


def run_set(kubemigrate: Kubemigrate, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    log = tmp_path / "termination-log"
    result = kubemigrate("run-set", "--termination-log", str(log), *args)
    return result.returncode, json.loads(log.read_text())


def test_run_set_applies_to_a_target_then_rolls_back(
    kubemigrate: Kubemigrate, migrations: Migrations, tmp_path: Path
) -> None:
    migrations.write("V1__a.sql", "CREATE TABLE a (id int);")
    migrations.write("U1__a.sql", "DROP TABLE a;")
    migrations.write("V2__b.sql", "CREATE TABLE b (id int); INSERT INTO b VALUES (1), (2);")
    migrations.write("U2__b.sql", "DROP TABLE b;")

    status, up = run_set(kubemigrate, tmp_path, "--target", "2")
    assert status == 0
    assert (up["ok"], up["direction"], up["reason"], up["applied"]) == (True, "apply", "Applied", 2)
    assert up["schemaVersion"] == "2" and up["rowsAffected"] == 2
    assert [m["version"] for m in up["recent"]] == ["1", "2"]
    assert {c["name"] for c in up["checks"]} >= {"connectivity", "drift"}
    assert tables(kubemigrate.url) == {"a", "b"}

    status, down = run_set(kubemigrate, tmp_path, "--target", "1")
    assert status == 0
    assert (down["direction"], down["reason"], down["rolledBack"]) == ("rollback", "RolledBack", 1)
    assert down["schemaVersion"] == "1"
    assert tables(kubemigrate.url) == {"a"}


def test_run_set_reports_where_a_run_stopped(
    kubemigrate: Kubemigrate, migrations: Migrations, tmp_path: Path
) -> None:
    migrations.write("V1__a.sql", "CREATE TABLE a (id int);")
    migrations.write("V2__bad.sql", "SELECT 1;\nCREATE TABLE a (id int);")

    status, data = run_set(kubemigrate, tmp_path)
    assert status == 1
    assert (data["ok"], data["reason"], data["applied"]) == (False, "SQLError", 1)
    last = data["lastError"]
    assert (last["version"], last["sqlstate"], last["file"]) == ("2", "42P07", "V2__bad.sql")
    assert last["statement"] == "CREATE TABLE a (id int)"


def test_run_set_refuses_a_target_not_in_the_source(
    kubemigrate: Kubemigrate, migrations: Migrations, tmp_path: Path
) -> None:
    migrations.write("V1__a.sql", "CREATE TABLE a (id int);")
    status, data = run_set(kubemigrate, tmp_path, "--target", "7")
    assert status == 2
    assert data["reason"] == "InvalidTarget" and "7" in data["error"]
    assert tables(kubemigrate.url) == set()
