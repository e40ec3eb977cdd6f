"""A preflight that keeps failing backs off: exponentially, whatever wakes the Migration, across
an operator restart, and with Events aggregated rather than one per attempt."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from harness import databases, postgres
from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import migration, status

pytestmark = pytest.mark.integration

WRONG = "wrong-Pa55word-backoff"


def _bad_secret(kubectl: Kubectl, namespace: str, database_url: str, pg_admin_url: str) -> None:
    databases.ensure_role(pg_admin_url, postgres.PASSWORD_ROLE, "the-right-one")
    url = databases.with_user(database_url, postgres.PASSWORD_ROLE, WRONG)
    kubectl.run(
        "create", "secret", "generic", "baddb", "-n", namespace, f"--from-literal=url={url}"
    )


def _job_names(kubectl: Kubectl, namespace: str) -> set[str]:
    found = kubectl.run("get", "jobs", "-n", namespace, "-o", "name", check=False).stdout
    return {line.split("/", 1)[1] for line in found.split()}


def _events(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    items = kubectl.json("get", "events", "-n", namespace)["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


def _attempt(st: dict[str, Any]) -> int:
    """The preflight attempt status.preflightJob names (m1-preflight-g1 is 0, ...-g1-3 is 3)."""
    job = st.get("preflightJob") or ""
    tail = job.rsplit("-", 1)[-1]
    return 0 if tail.startswith("g") else int(tail)


def test_failing_preflight_starts_few_jobs_and_few_events(
    kubectl: Kubectl,
    namespace: str,
    database_url: str,
    pg_admin_url: str,
    start_operator: Callable[..., OperatorProcess],
    crds: list[str],
) -> None:
    """Retry delays 1, 2, 4, 8, 16, 32 s (±20%): about six Jobs in a minute, not sixty."""
    _bad_secret(kubectl, namespace, database_url, pg_admin_url)
    start_operator(KUBEMIGRATE_RETRY_MIN_SECONDS="1", KUBEMIGRATE_RETRY_MAX_SECONDS="60")
    kubectl.apply(
        migration("m1", "1", "CREATE TABLE never (id int);", secret="baddb"), "-n", namespace
    )
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen |= _job_names(kubectl, namespace)
        time.sleep(0.5)
    st = status(kubectl, namespace, "m1")
    started = max(len(seen), _attempt(st) + 1)
    assert started <= 7, f"{started} preflight Jobs in 60 s: {sorted(seen)}"
    assert st["reason"] in ("AuthenticationFailed", "PreflightRunning")
    events = _events(kubectl, namespace, "m1")
    warnings = [e for e in events if e["type"] == "Warning"]
    assert 1 <= len(warnings) <= 3, [(e["reason"], e["message"]) for e in warnings]
    started_events = [e for e in events if e["reason"] == "PreflightStarted"]
    assert len(started_events) <= 3, [e["message"] for e in started_events]


def test_next_attempt_time_survives_an_operator_restart(
    kubectl: Kubectl,
    namespace: str,
    database_url: str,
    pg_admin_url: str,
    start_operator: Callable[..., OperatorProcess],
    crds: list[str],
) -> None:
    _bad_secret(kubectl, namespace, database_url, pg_admin_url)
    env = {"KUBEMIGRATE_RETRY_MIN_SECONDS": "40", "KUBEMIGRATE_RETRY_MAX_SECONDS": "60"}
    first = start_operator(**env)
    kubectl.apply(
        migration("m1", "1", "CREATE TABLE never (id int);", secret="baddb"), "-n", namespace
    )
    failed = wait_for(
        lambda: (
            (s := status(kubectl, namespace, "m1")).get("reason") == "AuthenticationFailed" and s
        ),
        timeout=60,
        what="the first preflight to fail",
    )
    first.kill()
    start_operator(**env)
    time.sleep(15)  # the old operator's delay is at least 32 s; the new one must honour it
    jobs = _job_names(kubectl, namespace)
    assert jobs <= {"m1-preflight-g1"}, f"a new Job started after the restart: {jobs}"
    assert _attempt(status(kubectl, namespace, "m1")) == 1
    next_at = datetime.fromisoformat(failed["nextAttemptAt"].replace("Z", "+00:00"))
    assert (next_at - datetime.now(UTC)).total_seconds() > 5
    wait_for(
        lambda: _attempt(status(kubectl, namespace, "m1")) >= 2,
        timeout=90,
        what="the next attempt once its time has come",
    )
    assert datetime.now(UTC) >= next_at
    # The failed attempt's Job goes, even if the operator was killed before deleting it.
    wait_for(
        lambda: "m1-preflight-g1" not in _job_names(kubectl, namespace),
        timeout=30,
        what="the first attempt's Job to be deleted",
    )
