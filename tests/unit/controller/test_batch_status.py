"""A running batched step's status (controller/build/batch_status): pure."""

from __future__ import annotations

from kubemigrate.controller.build.batch_status import batch_status
from kubemigrate.controller.build.status import patch
from kubemigrate.engine import BatchProgress
from kubemigrate.models.migration import MigrationPhase


def _p(state: str = "running", detail: str | None = None) -> BatchProgress:
    return BatchProgress(
        version="7",
        kind="apply",
        statement=2,
        line=3,
        state=state,  # type: ignore[arg-type]
        batches=12,
        rows=120_000,
        batch_size=10_000,
        estimate=2_000_000,
        estimate_source="planner",
        rate=35_012.4,
        eta_seconds=53.7,
        detail=detail,
    )


def test_running() -> None:
    change = batch_status(_p(), MigrationPhase.APPLYING, "Applying", "7")
    assert (change.phase, change.reason) == (MigrationPhase.APPLYING, "Applying")
    assert change.message == (
        "Applying version 7: statement 2, batch 12: 120000 of about 2000000 rows (6%),"
        " 35012 rows/s, ETA 54s"
    )
    body = patch(change)["batchProgress"]
    body.pop("updatedAt")
    assert body == {
        "statement": 2,
        "state": "running",
        "batches": 12,
        "rowsDone": 120_000,
        "rowsEstimate": 2_000_000,
        "rowsPerSecond": 35_012,
        "etaSeconds": 54,
        "batchSize": 10_000,
    }


def test_paused_and_lagging() -> None:
    paused = batch_status(_p("paused"), MigrationPhase.ROLLING_BACK, "Rolling back", "7")
    assert (paused.reason, paused.phase) == ("Paused", MigrationPhase.ROLLING_BACK)
    assert paused.message is not None and paused.message.endswith(
        "; paused (spec.paused), set it false to resume"
    )
    lag = batch_status(
        _p("lagging", "replication lag 9.0s over max_lag 5s"),
        MigrationPhase.APPLYING,
        "Applying",
        "7",
    )
    assert lag.reason == "WaitingForReplicas"
    assert lag.message is not None and "waiting: replication lag 9.0s" in lag.message
