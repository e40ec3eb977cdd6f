"""Who a Migration's watch event wakes: itself when its spec changed, the next of its database
when it settled, and every Migration whose status says it waits for it, at each of its phase
changes, so a Pending message never names a phase the predecessor has left (issue 10, 7)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kubemigrate.controller.metrics import Metrics
from kubemigrate.controller.ordering.migrations import DatabaseKey, Peer, peer_of
from kubemigrate.controller.runtime import Runtime
from kubemigrate.settings import Settings

NS = "shop"


def body(
    name: str,
    version: str,
    phase: str | None,
    *,
    waiting_for: str | None = None,
    secret: str = "db",
    depends_on: tuple[str, ...] = (),
    namespace: str = NS,
) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": 1}
    if phase:
        status["phase"] = phase
    if waiting_for:
        status["waitingFor"] = waiting_for
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "database": {"secretRef": {"name": secret}},
            "version": version,
            "dependsOn": list(depends_on),
        },
        "status": status,
    }


def index_of(*bodies: dict[str, Any]) -> dict[DatabaseKey, list[Peer]]:
    index: dict[DatabaseKey, list[Peer]] = defaultdict(list)
    for b in bodies:
        peer = peer_of(b)
        index[peer.database].append(peer)
    return dict(index)


def woken_by(event: dict[str, Any], *others: dict[str, Any]) -> set[str]:
    runtime = Runtime(Settings(image="kubemigrate:test"), api=None, metrics=Metrics())  # type: ignore[arg-type]
    woken: set[str] = set()
    runtime.wakeups.wake = woken.add  # type: ignore[method-assign]
    runtime.on_migration_event(event, index_of(event, *others))
    return woken


WAITERS = (
    body("m2", "2", "Pending", waiting_for="m1"),
    body("m3", "3", "Pending", waiting_for="m1"),
    # another database, waiting for m1 as its dependency
    body("a1", "1", "Pending", waiting_for="m1", secret="analytics", depends_on=("m1",)),
    # waits for someone else
    body("b5", "5", "Pending", waiting_for="m4", secret="analytics"),
    # the same name in another namespace is another Migration
    body("x2", "2", "Pending", waiting_for="m1", namespace="other"),
)


def test_each_phase_change_wakes_those_waiting_for_it() -> None:
    for phase in ("Preflight", "BackingUp", "Applying", "Failed"):
        woken = woken_by(body("m1", "1", phase), *WAITERS)
        assert {"uid-m2", "uid-m3", "uid-a1"} <= woken, phase
        assert not woken & {"uid-b5", "uid-x2"}, phase


def test_settling_still_wakes_the_next_in_line() -> None:
    woken = woken_by(body("m1", "1", "Succeeded"), body("m4", "4", "Pending"), *WAITERS)
    assert {"uid-m2", "uid-m3", "uid-a1"} <= woken
    assert "uid-m4" not in woken  # not next, and not waiting for m1
