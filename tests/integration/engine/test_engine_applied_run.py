"""`Migrator.last_applied`: the run that applied a version, read back from the history.

A caller that lost a run's report (an operator killed between COMMIT and writing status) asks
the history for it: the engine applies a version once, so a second apply reports nothing.
"""

from __future__ import annotations

from integration.engine.conftest import EngineFactory
from integration.engine.engine_helpers import src
from kubemigrate.engine import AppliedRun, Origin
from kubemigrate.engine.migrate.migrator import Migrator

SQL = "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 7); SELECT pg_sleep(0.2)"


def test_the_run_that_applied_a_version(make_engine: EngineFactory) -> None:
    engine = make_engine(origin=Origin("m1", "uid-1", 3))
    source = src("1", SQL, "DROP TABLE t")
    report = engine.apply([source])
    [applied] = report.results

    again = engine.apply([source])
    assert again.results == ()  # applied once: the second run has nothing to say of it

    found = engine.last_applied("1")
    assert isinstance(found, AppliedRun)
    assert found.run_id == report.run_id
    assert found.result.kind == "apply" and found.result.status == "success"
    assert found.result.rows_affected == applied.rows_affected == 7
    assert found.result.tables_created == ("public.t",)
    assert abs(found.result.duration_seconds - applied.duration_seconds) < 0.002
    assert found.result.duration_seconds >= 0.2
    assert found.result.started_at == applied.started_at
    assert found.result.finished_at == applied.finished_at
    assert found.result.checksum == source.checksum
    assert found.origin == Origin("m1", "uid-1", 3)


def test_the_latest_apply_after_a_rollback_and_none_while_rolled_back(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    source = src("1", "CREATE TABLE t (id int)", "DROP TABLE t")
    first = engine.apply([source])
    engine.rollback([source], versions=["1"])
    assert engine.last_applied("1") is None
    second = engine.apply([source])
    found = engine.last_applied("1")
    assert found is not None and found.run_id == second.run_id != first.run_id


def test_nothing_for_a_version_never_applied_baselined_or_without_history(
    make_engine: EngineFactory, database_url: str
) -> None:
    engine = make_engine()
    assert engine.last_applied("1") is None  # no history at all: none is created
    assert Migrator(database_url).status([]) == []
    engine.baseline([src("1", "CREATE TABLE t (id int)")], "1")
    assert engine.last_applied("1") is None  # recorded, but no run applied it
    assert engine.last_applied("2") is None
    assert engine.last_applied("01") is None  # "01" and "1" are one version
    engine.apply([src("2", "SELECT 1")])
    found = engine.last_applied("02")
    assert found is not None and found.result.version == "2"
