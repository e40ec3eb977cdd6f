"""kstatus conditions from phases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubemigrate.controller.build.conditions import build_conditions, health
from kubemigrate.models.common import Condition, ConditionStatus

T1, T2, T3 = (datetime(2024, 12, 20, hour, tzinfo=UTC) for hour in (1, 2, 3))


def by_type(conditions: list[Condition]) -> dict[str, Condition]:
    return {c.type: c for c in conditions}


@pytest.mark.parametrize(
    ("phase", "ready", "reconciling", "stalled"),
    [
        ("Succeeded", "True", "False", "False"),
        ("RolledBack", "True", "False", "False"),
        ("DryRunSucceeded", "True", "False", "False"),
        ("Failed", "False", "False", "True"),
        ("Pending", "False", "True", "False"),
        ("Applying", "False", "True", "False"),
        ("Preflight", "False", "True", "False"),
        ("RollingBack", "False", "True", "False"),
        ("Running", "False", "True", "False"),  # DatabaseBackup and DatabaseRestore
    ],
)
def test_phase_to_kstatus(phase: str, ready: str, reconciling: str, stalled: str) -> None:
    got = by_type(build_conditions(health(phase, "R", "m"), 3, T1))
    assert (got["Ready"].status, got["Reconciling"].status, got["Stalled"].status) == (
        ready,
        reconciling,
        stalled,
    )
    assert all(c.observed_generation == 3 for c in got.values())


def test_transition_time_kept_while_status_unchanged_and_foreign_conditions_kept() -> None:
    first = build_conditions(health("Pending", "Waiting", "a"), 1, T1)
    first.append(Condition(type="Custom", status=ConditionStatus.TRUE, last_transition_time=T1))
    second = by_type(build_conditions(health("Applying", "Applying", "b"), 1, T2, first))
    assert second["Reconciling"].last_transition_time == T1
    assert second["Reconciling"].message == "b"
    assert "Custom" in second
    third = by_type(
        build_conditions(health("Succeeded", "Applied", "c"), 2, T3, list(second.values()))
    )
    assert third["Ready"].last_transition_time == T3
    assert third["Reconciling"].status == "False"


def test_conditions_dump_as_the_api_stores_them() -> None:
    """camelCase, RFC 3339 times, every field set (a foreign condition: only what it had)."""
    foreign = Condition.model_validate(
        {"type": "Custom", "status": "True", "lastTransitionTime": "2024-12-20T00:00:00Z"}
    )
    ready, *_, kept = build_conditions(health("Pending", "Waiting", "a"), 1, T1, [foreign])
    assert ready.model_dump(by_alias=True, exclude_unset=True, mode="json") == {
        "type": "Ready",
        "status": "False",
        "reason": "Waiting",
        "message": "a",
        "observedGeneration": 1,
        "lastTransitionTime": "2024-12-20T01:00:00Z",
    }
    assert kept.model_dump(by_alias=True, exclude_unset=True, mode="json") == {
        "type": "Custom",
        "status": "True",
        "lastTransitionTime": "2024-12-20T00:00:00Z",
    }
