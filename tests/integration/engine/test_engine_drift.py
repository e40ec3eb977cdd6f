"""Checksums, repair, baseline, out-of-order versions and validation."""

from __future__ import annotations

import pytest

from integration.engine.engine_helpers import history, src, tables
from kubemigrate.engine.errors import DriftDetected, InvalidSources, OutOfOrder
from kubemigrate.engine.migrate.migrator import Migrator


def test_drift_is_refused_listing_versions_and_repair_accepts(
    engine: Migrator, database_url: str
) -> None:
    sources = [src(str(i), f"CREATE TABLE t{i} (id int);") for i in range(1, 5)]
    engine.apply(sources[:3])
    edited = [
        src("1", "CREATE TABLE t1 (id bigint);"),
        sources[1],
        src("3", "CREATE TABLE t3 (id int); -- edited"),
        sources[3],
    ]

    with pytest.raises(DriftDetected) as caught:
        engine.apply(edited)
    assert caught.value.versions == ["1", "3"]
    assert "1, 3" in str(caught.value)
    assert tables(database_url) == {"public.t1", "public.t2", "public.t3"}
    assert [s.state for s in engine.status(edited)] == ["drifted", "applied", "drifted", "pending"]
    validation = engine.validate(edited)
    assert [d.version for d in validation.drifted] == ["1", "3"]
    assert not validation.ok

    repaired = engine.repair(edited)
    assert [(r.version, r.kind, r.checksum) for r in repaired.results] == [
        ("1", "repair", edited[0].checksum),
        ("3", "repair", edited[2].checksum),
    ]
    assert engine.repair(edited).results == ()
    assert [r.version for r in engine.apply(edited).results] == ["4"]
    assert [s.state for s in engine.status(edited)] == ["applied"] * 4
    kinds = [(r["version"], r["kind"]) for r in history(database_url)]
    assert ("1", "repair") in kinds and ("3", "repair") in kinds


def test_line_endings_are_not_drift(engine: Migrator) -> None:
    engine.apply([src("1", "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n")])
    assert (
        engine.apply([src("1", "CREATE TABLE a (id int);\r\nCREATE TABLE b (id int);\r\n")]).results
        == ()
    )


def test_baseline_marks_versions_applied_without_running(
    engine: Migrator, database_url: str
) -> None:
    sources = [src(str(i), f"CREATE TABLE t{i} (id int);") for i in range(1, 6)]
    report = engine.baseline(sources, "3")
    assert [(r.version, r.kind) for r in report.results] == [
        ("1", "baseline"),
        ("2", "baseline"),
        ("3", "baseline"),
    ]
    assert report.schema_version == "3"
    assert tables(database_url) == set()
    assert [r.version for r in engine.apply(sources).results] == ["4", "5"]
    assert tables(database_url) == {"public.t4", "public.t5"}
    assert [s.state for s in engine.status(sources)] == ["applied"] * 5


def test_baseline_at_a_version_without_a_source_records_a_marker(engine: Migrator) -> None:
    report = engine.baseline(
        [src("5", "CREATE TABLE t5 (id int)")], "4", description="existing schema"
    )
    assert [(r.version, r.description) for r in report.results] == [("4", "existing schema")]
    states = engine.status([src("5", "CREATE TABLE t5 (id int)")])
    assert [(s.version, s.state) for s in states] == [("4", "missing"), ("5", "pending")]


def test_out_of_order_is_refused_unless_allowed(engine: Migrator, database_url: str) -> None:
    engine.apply([src("1", "CREATE TABLE a (id int)"), src("3", "CREATE TABLE c (id int)")])
    sources = [
        src("1", "CREATE TABLE a (id int)"),
        src("2", "CREATE TABLE b (id int)"),
        src("3", "CREATE TABLE c (id int)"),
        src("4", "CREATE TABLE d (id int)"),
    ]

    with pytest.raises(OutOfOrder, match="2 are older than the newest applied version 3"):
        engine.apply(sources)
    assert tables(database_url) == {"public.a", "public.c"}
    assert engine.validate(sources).out_of_order == ("2",)
    assert engine.validate(sources, allow_out_of_order=True).ok

    report = engine.apply(sources, allow_out_of_order=True)
    assert [r.version for r in report.results] == ["2", "4"]
    assert report.schema_version == "4"


def test_duplicate_versions_are_refused(engine: Migrator) -> None:
    with pytest.raises(InvalidSources, match="duplicate version"):
        engine.apply([src("1", "SELECT 1"), src("001", "SELECT 2")])


def test_validate_reports_without_changing_anything(engine: Migrator, database_url: str) -> None:
    sources = [
        src("1", "CREATE TABLE a (id int)"),
        src("2", "CREATE INDEX CONCURRENTLY a_id ON a (id)"),
        src("3", "CREATE TABEL b (id int)"),
    ]
    report = engine.validate(sources)
    assert report.pending == ("1", "2", "3")
    assert report.schema_version is None
    assert len(report.problems) == 2
    assert "CREATE INDEX CONCURRENTLY" in report.problems[0]
    assert "does not parse: line 1" in report.problems[1]
    assert not report.ok
    assert tables(database_url) == set()
    engine.apply(sources[:1])
    missing = engine.validate([])
    assert missing.missing == ("1",) and missing.ok
