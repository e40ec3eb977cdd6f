"""The fleet ledger: ranges, reading junk, claiming, recording, the budget and the halt."""

from __future__ import annotations

import json

import pytest

from kubemigrate import fleetledger
from kubemigrate.fleetledger import (
    MAX_ERRORS,
    MAX_MESSAGE,
    TargetError,
    claim,
    format_ranges,
    ledger_data,
    new_ledger,
    parse_ranges,
    read_ledger,
    record,
    stop_reason,
)


@pytest.mark.parametrize(
    ("text", "indexes"),
    [
        ("", set()),
        ("0", {0}),
        ("0-3,7,9-10", {0, 1, 2, 3, 7, 9, 10}),
        ("5,1-2", {1, 2, 5}),
        (" 1 , 3 - 4 ", {1, 3, 4}),
        ("x,2,,-1,5-3,7-x,3-", {2}),
        ("\u0661", set()),  # a digit, but not an ASCII one
        ("0-99999999999", set()),  # too many to be a wave
        ("1.5,2e3,0x3", set()),
    ],
)
def test_parse_ranges(text: str, indexes: set[int]) -> None:
    assert parse_ranges(text) == frozenset(indexes)


@pytest.mark.parametrize(
    ("indexes", "text"),
    [
        ([], ""),
        ([4], "4"),
        ([0, 1, 2, 3, 7, 9, 10], "0-3,7,9-10"),
        ([10, 9, 3, 3, 0, 1, 2, 7], "0-3,7,9-10"),
        ([1, 3, 5], "1,3,5"),
    ],
)
def test_format_ranges(indexes: list[int], text: str) -> None:
    assert format_ranges(indexes) == text


@pytest.mark.parametrize(
    "indexes", [set(), {0}, {0, 1}, {5, 6, 7, 100, 102, 103}, set(range(0, 1000, 3))]
)
def test_ranges_round_trip(indexes: set[int]) -> None:
    assert parse_ranges(format_ranges(indexes)) == frozenset(indexes)


def test_new_ledger_is_all_strings_and_reads_back() -> None:
    data = new_ledger(2, paused=True)
    assert all(isinstance(v, str) for v in data.values())
    assert data["next"] == "0" and data["running"] == "" and data["errors"] == "[]"
    ledger = read_ledger(data)
    assert (ledger.next, ledger.budget, ledger.paused, ledger.rows) == (0, 2, True, 0)
    assert not ledger.running and not ledger.succeeded and not ledger.failed
    assert ledger.errors == () and dict(ledger.versions) == {}
    assert ledger_data(ledger) == data


def test_new_ledger_refuses_a_negative_budget() -> None:
    assert new_ledger(-3)["budget"] == "0"


@pytest.mark.parametrize("data", [None, {}])
def test_no_data_reads_as_defaults(data: dict[str, str] | None) -> None:
    assert ledger_data(read_ledger(data)) == new_ledger(0)


def test_junk_reads_as_defaults() -> None:
    junk = {
        "next": "seven",
        "budget": "-2",
        "paused": "yes",
        "running": "a-b",
        "succeeded": "{}",
        "failed": "1-",
        "errors": "[not json",
        "versions": '["a list"]',
        "rows": "1e9",
    }
    assert ledger_data(read_ledger(junk)) == new_ledger(0)


def test_junk_inside_errors_and_versions_is_dropped() -> None:
    errors = [
        {"name": "a", "version": "2", "sqlstate": "42P07", "message": "exists"},
        {"name": "b", "message": "no version", "version": 3, "sqlstate": ["x"]},
        {"name": 5, "message": "a number for a name"},
        {"message": "no name"},
        "a string",
        {"name": "c", "message": "x" * 2000},
    ]
    versions = {"2": 4, "": 1, "3": "five", "4": True, "5": 1.5}
    ledger = read_ledger({"errors": json.dumps(errors), "versions": json.dumps(versions)})
    assert ledger.errors[:2] == (
        TargetError("a", "2", "42P07", "exists"),
        TargetError("b", None, None, "no version"),
    )
    assert [e.name for e in ledger.errors] == ["a", "b", "c"]
    assert len(ledger.errors[2].message) == MAX_MESSAGE
    assert dict(ledger.versions) == {"2": 4, "": 1}


def test_a_full_ledger_round_trips() -> None:
    data = {
        "next": "12",
        "budget": "3",
        "paused": "false",
        "running": "10-11",
        "succeeded": "0-7,9",
        "failed": "8",
        "errors": json.dumps([{"name": "t8", "version": "3", "sqlstate": None, "message": "m"}]),
        "versions": json.dumps({"3": 10, "2": 1}),
        "rows": "1234",
    }
    again = ledger_data(read_ledger(data))
    assert read_ledger(again) == read_ledger(data)
    assert again["versions"] == '{"2":1,"3":10}'
    assert again["running"] == "10-11" and again["succeeded"] == "0-7,9"


def ledger(**data: str) -> fleetledger.Ledger:
    return read_ledger({**new_ledger(0), **data})


def test_claim_takes_the_next_index_and_marks_it_running() -> None:
    first = claim(ledger(), 3)
    assert first is not None
    after, index = first
    assert index == 0 and after.next == 1 and after.running == {0}
    second = claim(after, 3)
    assert second is not None and second[1] == 1 and second[0].running == {0, 1}


def test_claim_stops_when_every_target_is_claimed() -> None:
    assert claim(ledger(next="3"), 3) is None
    assert stop_reason(ledger(next="3"), 3) == "done"
    assert claim(ledger(), 0) is None


def test_claim_stops_while_paused_and_goes_on_after() -> None:
    assert stop_reason(ledger(paused="true"), 3) == "paused"
    assert claim(ledger(paused="true"), 3) is None
    assert claim(ledger(paused="false"), 3) is not None


@pytest.mark.parametrize(
    ("budget", "failed", "reason"),
    [
        ("0", "", None),
        ("0", "0", "halted"),
        ("1", "0", None),
        ("1", "0,4", "halted"),
        ("2", "0-1", None),
    ],
)
def test_the_budget_tolerates_that_many_failures(
    budget: str, failed: str, reason: str | None
) -> None:
    state = ledger(budget=budget, failed=failed, next="5")
    assert stop_reason(state, 10) == reason
    assert (claim(state, 10) is None) == (reason is not None)


def test_halted_wins_over_paused_and_done() -> None:
    assert stop_reason(ledger(failed="0", paused="true", next="9"), 9) == "halted"


def test_record_success() -> None:
    state = ledger(next="2", running="0-1")
    after = record(state, 1, name="t1", ok=True, version="3", rows=7)
    assert after.running == {0} and after.succeeded == {1} and not after.failed
    assert dict(after.versions) == {"3": 1} and after.rows == 7 and after.errors == ()


def test_record_failure_names_the_target() -> None:
    state = ledger(next="1", running="0")
    error = TargetError("t0", "2", "42P07", "SQLError: relation exists")
    after = record(state, 0, name="t0", ok=False, version="1", error=error)
    assert after.failed == {0} and not after.running and not after.succeeded
    assert after.errors == (error,)
    assert dict(after.versions) == {"1": 1}
    assert stop_reason(after, 5) == "halted"


def test_record_failure_without_an_error_still_names_the_target() -> None:
    after = record(ledger(running="0"), 0, name="t0", ok=False, version=None)
    assert after.errors == (TargetError("t0", None, None, "failed"),)
    assert dict(after.versions) == {"": 1}


def test_recording_twice_counts_once() -> None:
    once = record(ledger(running="0"), 0, name="t0", ok=True, version="2", rows=3)
    assert record(once, 0, name="t0", ok=False, version="2", rows=3) == once


def test_versions_count_each_target_where_it_is() -> None:
    state = ledger(running="0-3", next="4")
    for i, version in enumerate(["2", "2", None, "1"]):
        state = record(state, i, name=f"t{i}", ok=version is not None, version=version)
    assert dict(state.versions) == {"2": 2, "": 1, "1": 1}


def test_errors_are_capped_and_messages_cut() -> None:
    state = ledger(budget="100", next="30", running="0-29")
    for i in range(30):
        error = TargetError(f"t{i}", None, None, "y" * 1000)
        state = record(state, i, name=f"t{i}", ok=False, version=None, error=error)
    assert len(state.failed) == 30
    assert len(state.errors) == MAX_ERRORS
    assert [e.name for e in state.errors] == [f"t{i}" for i in range(MAX_ERRORS)]
    assert all(len(e.message) == MAX_MESSAGE and e.message.endswith("...") for e in state.errors)
    stored = json.loads(ledger_data(state)["errors"])
    assert len(stored) == MAX_ERRORS


def test_a_running_target_finishes_after_the_halt() -> None:
    """Two claimed, the first fails: no new claim, but the second still records."""
    state = ledger(budget="0")
    for _ in range(2):
        claimed = claim(state, 5)
        assert claimed is not None
        state = claimed[0]
    state = record(state, 0, name="t0", ok=False, version=None)
    assert claim(state, 5) is None
    state = record(state, 1, name="t1", ok=True, version="2")
    assert state.succeeded == {1} and state.failed == {0} and not state.running
    assert stop_reason(state, 5) == "halted"
