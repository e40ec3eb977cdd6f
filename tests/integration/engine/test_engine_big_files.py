"""Big migration files: split in linear time, and before the migration lock is taken."""

from __future__ import annotations

import time
from typing import Any

import pytest

from integration.engine.engine_helpers import query, src
from kubemigrate.engine.migrate import statements
from kubemigrate.engine.migrate.migrator import Migrator


def test_sources_are_parsed_before_the_lock_is_taken(
    engine: Migrator, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing a big file must not hold the lock over an idle connection."""
    locks_while_parsing: list[int] = []
    split = statements.split_statements

    def watched(sql: str, *args: Any) -> list[statements.Statement]:
        locks_while_parsing.append(
            query(database_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0]
        )
        return split(sql, *args)

    monkeypatch.setattr(statements, "split_statements", watched)
    sources = [
        src("1", "CREATE TABLE a (id int)", "DROP TABLE a"),
        src("2", "CREATE TABLE b (id int)", "DROP TABLE b"),
    ]
    assert engine.apply(sources).ok
    assert engine.rollback(sources, target="0").ok
    assert locks_while_parsing == [0, 0, 0, 0]


def test_a_4_mb_file_of_40000_statements(engine: Migrator, database_url: str) -> None:
    """Splitting counted lines from the start for every statement: minutes for this file."""
    body = "".join(
        f"INSERT INTO big VALUES ({i}, 'a row of about a hundred bytes, to make"
        f" four megabytes: {i:08d}');\n"
        for i in range(40_000)
    )
    started = time.monotonic()
    report = engine.apply([src("1", "CREATE TABLE big (id int PRIMARY KEY, name text);\n" + body)])
    elapsed = time.monotonic() - started
    assert report.ok, report.failed
    assert report.results[0].rows_affected == 40_000
    assert report.results[0].tables_created == ("public.big",)
    assert query(database_url, "SELECT count(*) FROM big") == [(40_000,)]
    assert elapsed < 20, f"{elapsed:.1f} s"
