"""The operator killed with SIGKILL at random moments in preflight, backup, apply, status write
and restore, and started again each time: every migration applied exactly once, nothing stuck,
no Job orphaned. The short version (CI) kills three times, the full one (`make faults`) 25."""

from __future__ import annotations

import os
import random
import statistics
from collections.abc import Callable

import pytest

from faults.operator.figures import record, seconds
from faults.operator.storm import APPLY, BACKUP, PREFLIGHT, RESTORE, STATUS_WRITE, Storm
from harness.kube import Kubectl
from harness.operator import OperatorProcess

pytestmark = pytest.mark.integration

EVERY_POINT = (PREFLIGHT, BACKUP, APPLY, STATUS_WRITE, RESTORE)


def _seed() -> int:
    return int(os.environ.get("KUBEMIGRATE_FAULTS_SEED") or random.randrange(1 << 30))


def _storm(
    kubectl: Kubectl,
    namespace: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
    cycles: list[tuple[str, ...]],
    label: str,
) -> Storm:
    seed = _seed()
    storm = Storm(kubectl, namespace, database_url, start_operator, random.Random(seed))
    storm.start()
    for index, points in enumerate(cycles):
        storm.cycle(index, points)
    storm.check_nothing_stuck()
    storm.check_no_orphaned_jobs()
    hits = [k for k in storm.kills if k.hit]
    record(f"{label}: operator SIGKILLs", len(storm.kills), f"seed {seed}")
    for point in EVERY_POINT:
        mine = [k for k in storm.kills if k.point == point]
        if mine:
            landed = [k for k in mine if k.hit]
            times = [k.recovered_seconds for k in mine]
            record(
                f"{label}: kills in {point}",
                f"{len(landed)} of {len(mine)} landed",
                f"kill to step done: median {seconds(statistics.median(times))}, "
                f"max {seconds(max(times))}",
            )
    record(f"{label}: applied more than once / stuck / orphaned Jobs", "0 / 0 / 0")
    assert len(hits) >= len(storm.kills) // 2
    return storm


@pytest.mark.short
def test_a_few_kills(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    storm = _storm(
        kubectl, namespace, database_url, start_operator, [(PREFLIGHT, BACKUP, APPLY)], "short"
    )
    assert len(storm.kills) == 3


@pytest.mark.full
@pytest.mark.timeout(1800)
def test_kill_storm(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    cycles = int(os.environ.get("KUBEMIGRATE_FAULTS_CYCLES") or 5)  # 5 kills each
    storm = _storm(
        kubectl, namespace, database_url, start_operator, [EVERY_POINT] * cycles, "kill storm"
    )
    assert len(storm.kills) >= min(20, 5 * cycles)
