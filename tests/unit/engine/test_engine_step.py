"""Pieces of running a migration that need no database: settings, positions, retries."""

from __future__ import annotations

import pytest

from kubemigrate.engine.migrate.catalog import DiffMode, diff_mode
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.statements import split_statements
from kubemigrate.engine.migrate.step import (
    RetryPolicy,
    RunSettings,
    local_settings,
    statement_number_at,
)


def test_local_settings_prefer_the_migration_s_own() -> None:
    source = MigrationSource("1.2", "", "", lock_timeout=5.0)
    text = local_settings(source, RunSettings(lock_timeout=2.0, statement_timeout=0.0))
    assert text == (
        "SET LOCAL kubemigrate.version = '1.2';SET LOCAL lock_timeout = '5000ms';"
        "SET LOCAL statement_timeout = '0ms';"
    )
    assert local_settings(source, RunSettings(lock_timeout=None), local=False) == (
        "SET kubemigrate.version = '1.2';SET lock_timeout = '5000ms';"
    )
    tiny = MigrationSource("1", "", "", lock_timeout=0.0001)
    assert "lock_timeout = '1ms'" in local_settings(tiny, RunSettings())


def test_statement_number_counts_non_empty_statements() -> None:
    sql = "SELECT 1;;\nSELECT $$a;b$$;\nCREATE TABEL x;"
    assert statement_number_at(sql, sql.index("TABEL")) == 3
    assert statement_number_at(sql, 0) == 1
    assert statement_number_at("SELECT 'unterminated", 3) is None


def test_retry_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(attempts=10, first_delay=0.1, max_delay=0.4)
    for attempt, base in [(1, 0.1), (2, 0.2), (3, 0.4), (6, 0.4)]:
        assert base / 2 <= policy.delay(attempt) <= base


@pytest.mark.parametrize(
    ("sql", "mode"),
    [
        ("INSERT INTO a VALUES (1); CREATE INDEX i ON a (id)", DiffMode.NONE),
        ("CREATE TABLE a (id int); INSERT INTO a VALUES (1)", DiffMode.NAMED),
        ("ALTER TABLE a ADD COLUMN b int", DiffMode.NAMED),
        ("ALTER TABLE a RENAME TO b", DiffMode.FULL),
        ("DROP TABLE a", DiffMode.FULL),
        ("DO $$ BEGIN END $$", DiffMode.FULL),
        ("SELECT f()", DiffMode.FULL),
    ],
)
def test_diff_mode_follows_the_commands(sql: str, mode: DiffMode) -> None:
    assert diff_mode(split_statements(sql)) is mode
    assert diff_mode(None) is DiffMode.FULL
