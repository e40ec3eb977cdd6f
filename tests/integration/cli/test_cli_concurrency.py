"""Runners started together: one applies, the others wait and find nothing left to do."""

from __future__ import annotations

import pytest

from integration.cli.cli_helpers import Kubemigrate, Migrations, query, tables

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("rows", [1, 0], ids=["with-rows", "ddl-batched"])
def test_three_runners_on_a_fresh_database_apply_each_migration_once(
    kubemigrate: Kubemigrate, migrations: Migrations, rows: int
) -> None:
    """With an INSERT each migration runs alone; DDL alone travels in batches."""
    for i in range(1, 31):
        insert = f"INSERT INTO t{i} VALUES ({i});\n" if rows else ""
        migrations.write(f"{i:03d}_t{i}.up.sql", f"CREATE TABLE t{i} (id int);\n{insert}")
    runners = [kubemigrate.start("apply", "--lock-wait", "60") for _ in range(3)]
    outcomes = [(r.wait(120), *r.communicate()) for r in runners]
    for code, stdout, stderr in outcomes:
        assert code == 0, f"exit {code}\n{stdout}\n{stderr}"
    assert {f"t{i}" for i in range(1, 31)} <= tables(kubemigrate.url)
    runs = query(
        kubemigrate.url,
        "SELECT version, count(*) FROM kubemigrate.history "
        "WHERE kind = 'apply' AND status = 'success' GROUP BY version",
    )
    assert sorted(runs) == [(f"{i:03d}", 1) for i in range(1, 31)]
    assert query(kubemigrate.url, "SELECT count(*) FROM t1") == [(rows,)]
    applied_lines = sum(
        len([line for line in out.splitlines() if line.startswith("  ")]) for _, out, _ in outcomes
    )
    assert applied_lines == 30
