"""A Pending Migration's message follows its predecessor's phase within seconds, not at its
own next look half a minute later (issue 10, defect 7: "pending messages lag the truth")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import migration, status, wait_phase

pytestmark = pytest.mark.integration

SLOW = "SELECT pg_sleep(15);\nCREATE TABLE t{n} (id int);"
PROMPT = 10.0
"""Seconds a waiter's message may lag (a loaded test machine included); its own next look
would be 30 s away."""


class Not(str):
    """A message that is not the one waited for: false, but shown in the timeout's report."""

    def __bool__(self) -> bool:
        return False


def says(kubectl: Kubectl, namespace: str, name: str, text: str) -> Callable[[], Any]:
    """The status once its message says text; else the message (for the timeout's report)."""

    def check() -> Any:
        st = status(kubectl, namespace, name)
        return st if text in st.get("message", "") else Not(st.get("message", ""))

    return check


def waits_for(kubectl: Kubectl, namespace: str, name: str, other: str) -> Callable[[], bool]:
    return lambda: status(kubectl, namespace, name).get("waitingFor") == other


def test_waiters_follow_their_predecessors_phase(
    kubectl: Kubectl, namespace: str, db_secret: str, operator: OperatorProcess
) -> None:
    off = {"enabled": False}
    # m1 waits for m0, which does not exist yet; m2 and m3 wait for m1.
    kubectl.apply(
        migration("m1", "1", SLOW.format(n=1), preflight=off, depends_on=("m0",)), "-n", namespace
    )
    kubectl.apply(migration("m2", "2", SLOW.format(n=2), preflight=off), "-n", namespace)
    kubectl.apply(migration("m3", "3", "CREATE TABLE t3 (id int);", preflight=off), "-n", namespace)
    for name in ("m2", "m3"):
        wait_for(waits_for(kubectl, namespace, name, "m1"), timeout=30, what=f"{name} to wait")

    kubectl.apply(migration("m0", "0", "CREATE TABLE t0 (id int);", preflight=off), "-n", namespace)
    wait_phase(kubectl, namespace, "m1", "Applying", timeout=30)
    for n in (2, 3):
        st = wait_for(
            says(kubectl, namespace, f"m{n}", "(Migration m1, Applying)"),
            timeout=PROMPT,
            what=f"m{n}'s message to follow m1 into Applying",
        )
        assert st["waitingFor"] == "m1"

    wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=30)
    # m3 now waits for m2, which it did not name before: told within seconds too.
    st = wait_for(
        says(kubectl, namespace, "m3", "waiting for version 2 (Migration m2, "),
        timeout=PROMPT,
        what="m3 to name m2 once m1 succeeded",
    )
    assert st["waitingFor"] == "m2"
    wait_phase(kubectl, namespace, "m3", "Succeeded", timeout=60)
