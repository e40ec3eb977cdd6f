"""Rolling back: newest first, to a target, by steps or one version; refused without down SQL."""

from __future__ import annotations

import pytest

from integration.engine.engine_helpers import history, src, tables
from kubemigrate.engine.errors import NoRollbackSql
from kubemigrate.engine.migrate.migrator import Migrator


def _sources() -> list:  # type: ignore[type-arg]
    return [src(str(i), f"CREATE TABLE t{i} (id int);", f"DROP TABLE t{i};") for i in range(1, 6)]


def test_rollback_to_target_reverts_newest_first(engine: Migrator, database_url: str) -> None:
    sources = _sources()
    engine.apply(sources)
    report = engine.rollback(sources, target="2")
    assert [(r.version, r.kind, r.status) for r in report.results] == [
        ("5", "rollback", "success"),
        ("4", "rollback", "success"),
        ("3", "rollback", "success"),
    ]
    assert report.results[0].tables_dropped == ("public.t5",)
    assert report.schema_version == "2"
    assert tables(database_url) == {"public.t1", "public.t2"}
    assert [r["version"] for r in history(database_url) if r["kind"] == "rollback"] == [
        "5",
        "4",
        "3",
    ]
    assert [s.state for s in engine.status(sources)] == [
        "applied",
        "applied",
        "rolled_back",
        "rolled_back",
        "rolled_back",
    ]
    # Rolled back versions are pending again.
    assert [r.version for r in engine.apply(sources).results] == ["3", "4", "5"]


def test_rollback_to_zero_reverts_everything(engine: Migrator, database_url: str) -> None:
    sources = _sources()
    engine.apply(sources)
    report = engine.rollback(sources, target="0")
    assert [r.version for r in report.results] == ["5", "4", "3", "2", "1"]
    assert report.schema_version is None
    assert tables(database_url) == set()


def test_rollback_by_steps_and_default_one(engine: Migrator, database_url: str) -> None:
    sources = _sources()
    engine.apply(sources)
    assert [r.version for r in engine.rollback(sources, steps=2).results] == ["5", "4"]
    assert [r.version for r in engine.rollback(sources).results] == ["3"]
    assert tables(database_url) == {"public.t1", "public.t2"}


def test_rollback_of_exactly_one_version(engine: Migrator, database_url: str) -> None:
    sources = _sources()
    engine.apply(sources)
    report = engine.rollback(sources, versions=["3"])
    assert [r.version for r in report.results] == ["3"]
    assert report.schema_version == "5"
    assert tables(database_url) == {"public.t1", "public.t2", "public.t4", "public.t5"}
    assert engine.rollback(sources, versions=["3"]).results == ()  # not applied any more


def test_missing_down_sql_stops_before_any_change(engine: Migrator, database_url: str) -> None:
    sources = _sources()
    sources[2] = src("3", "CREATE TABLE t3 (id int);")
    engine.apply(sources)
    with pytest.raises(NoRollbackSql) as caught:
        engine.rollback(sources, target="1")
    assert caught.value.versions == ["3"]
    assert "nothing was changed" in str(caught.value)
    assert len(tables(database_url)) == 5
    assert not any(r["kind"] == "rollback" for r in history(database_url))
    # A version absent from the sources cannot be rolled back either.
    with pytest.raises(NoRollbackSql):
        engine.rollback(sources[:4], steps=1)


def test_failed_rollback_changes_nothing_and_keeps_the_version_applied(
    engine: Migrator, database_url: str
) -> None:
    sources = [src("1", "CREATE TABLE a (id int);", "DROP TABLE a; SELECT 1/0;")]
    engine.apply(sources)
    report = engine.rollback(sources)
    failed = report.failed
    assert failed is not None and failed.sqlstate == "22012" and failed.statement_index == 2
    assert tables(database_url) == {"public.a"}
    assert [s.state for s in engine.status(sources)] == ["applied"]
    assert [(r["kind"], r["status"]) for r in history(database_url)] == [
        ("apply", "success"),
        ("rollback", "failed"),
    ]


def test_rollback_dry_run_changes_nothing(engine: Migrator, database_url: str) -> None:
    sources = _sources()
    engine.apply(sources)
    report = engine.rollback(sources, steps=2, dry_run=True)
    assert report.kind == "dry_run"
    assert [r.tables_dropped for r in report.results] == [("public.t5",), ("public.t4",)]
    assert len(tables(database_url)) == 5
    assert report.schema_version == "5"
