"""What to run, decided from the history's state and the sources: pure, no database."""

from __future__ import annotations

import pytest

from kubemigrate.engine.errors import InvalidSources
from kubemigrate.engine.migrate import planning
from kubemigrate.engine.migrate.history import RecordState, VersionRecord
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.versions import version_key


def record(
    version: str, state: RecordState = "applied", sql: str | None = None, rollback: bool = True
) -> VersionRecord:
    checksum = MigrationSource(version, "", sql if sql is not None else f"-- {version}").checksum
    return VersionRecord(
        version,
        version_key(version),
        "",
        state,
        checksum,
        None,
        1.0,
        rollback and state == "applied",
        None,
        None,
    )


def source(version: str, sql: str | None = None, down: str | None = "--") -> MigrationSource:
    return MigrationSource(
        version, f"m{version}", sql if sql is not None else f"-- {version}", down
    )


def records(*rs: VersionRecord) -> dict[tuple[int, ...], VersionRecord]:
    return {r.key: r for r in rs}


def test_pending_is_in_numeric_order_and_skips_applied() -> None:
    sources = planning.index_sources([source("10"), source("2"), source("1"), source("3")])
    history = records(record("1"), record("3", "failed"))
    assert [s.version for s in planning.pending(history, sources)] == ["2", "3", "10"]
    assert [s.version for s in planning.pending(history, sources, (3,))] == ["2", "3"]


def test_out_of_order_is_what_is_older_than_the_newest_applied() -> None:
    sources = planning.index_sources([source("1"), source("2"), source("3"), source("4")])
    history = records(record("1"), record("3"))
    todo = planning.pending(history, sources)
    assert [s.version for s in planning.out_of_order(todo, history)] == ["2"]
    assert planning.schema_version(history) == "3"


def test_drift_compares_applied_checksums_only() -> None:
    history = records(record("1"), record("2", "rolled_back"), record("3"))
    sources = planning.index_sources([source("1", "changed"), source("2", "changed"), source("3")])
    assert [d.version for d in planning.drifted(history, sources)] == ["1"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["4"]),
        ({"steps": 2}, ["4", "3"]),
        ({"steps": 0}, []),
        ({"target": (2,)}, ["4", "3"]),
        ({"target": (0,)}, ["4", "3", "1"]),
        ({"versions": ["3", "2"]}, ["3"]),
    ],
)
def test_to_revert_is_newest_first(kwargs: dict[str, object], expected: list[str]) -> None:
    history = records(record("1"), record("2", "rolled_back"), record("3"), record("4"))
    chosen = planning.to_revert(history, **kwargs)  # type: ignore[arg-type]
    assert [r.version for r in chosen] == expected


def test_states_merge_history_and_sources() -> None:
    history = records(record("1"), record("2"), record("3", "failed"), record("5"))
    sources = planning.index_sources([source("1"), source("2", "edited"), source("3"), source("4")])
    states = planning.states(history, sources)
    assert [(s.version, s.state) for s in states] == [
        ("1", "applied"),
        ("2", "drifted"),
        ("3", "failed"),
        ("4", "pending"),
        ("5", "missing"),
    ]


def test_invalid_target_and_duplicates_are_engine_errors() -> None:
    with pytest.raises(InvalidSources, match="invalid target"):
        planning.parse_target("v1")
    with pytest.raises(InvalidSources, match="duplicate"):
        planning.index_sources([source("1"), source("1.0")])
