"""kstatus conditions from phases."""

from __future__ import annotations

import pytest

from kubemigrate.controller.build.conditions import build_conditions, health


def by_type(conditions: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(c["type"]): c for c in conditions}


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
    ],
)
def test_phase_to_kstatus(phase: str, ready: str, reconciling: str, stalled: str) -> None:
    got = by_type(build_conditions(health(phase, "R", "m"), 3, "now"))
    assert (got["Ready"]["status"], got["Reconciling"]["status"], got["Stalled"]["status"]) == (
        ready, reconciling, stalled)
    assert all(c["observedGeneration"] == 3 for c in got.values())


def test_transition_time_kept_while_status_unchanged_and_foreign_conditions_kept() -> None:
    first = build_conditions(health("Pending", "Waiting", "a"), 1, "t1")
    first.append({"type": "Custom", "status": "True"})
    second = by_type(build_conditions(health("Applying", "Applying", "b"), 1, "t2", first))
    assert second["Reconciling"]["lastTransitionTime"] == "t1"
    assert second["Reconciling"]["message"] == "b"
    assert "Custom" in second
    third = by_type(build_conditions(health("Succeeded", "Applied", "c"), 2, "t3",
                                     list(second.values())))
    assert third["Ready"]["lastTransitionTime"] == "t3"
    assert third["Reconciling"]["status"] == "False"
