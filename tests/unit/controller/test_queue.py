"""The ordering rules: version order, dependsOn, duplicates, cycles, rollbacks newest first."""

from __future__ import annotations

import itertools

import pytest

from kubemigrate.controller.ordering.migrations import (
    DatabaseKey,
    Peer,
    apply_blocker,
    rollback_blocker,
)

DB = DatabaseKey("ns", "db", "url", "kubemigrate")
OTHER_DB = DatabaseKey("ns", "other", "url", "kubemigrate")


def peer(
    name: str,
    version: str,
    phase: str | None = None,
    *,
    rollback: bool = False,
    depends_on: tuple[str, ...] = (),
    db: DatabaseKey = DB,
    created: str = "t0",
    dry_run: bool = False,
) -> Peer:
    return Peer(
        name, version, db, phase, rollback, dry_run, depends_on, created, settled=phase is not None
    )


def test_lowest_pending_version_goes_first() -> None:
    m1, m2, m10 = peer("m1", "1"), peer("m2", "2"), peer("m10", "10")
    assert apply_blocker(m1, [m2, m10]) is None
    blocked = apply_blocker(m10, [m1, m2])
    assert blocked is not None
    assert blocked.reason == "WaitingForEarlierVersion"
    assert "version 1 " in blocked.message
    assert blocked.waiting_for == "m1"


def test_applied_lower_versions_do_not_block() -> None:
    assert apply_blocker(peer("m2", "2"), [peer("m1", "1", "Succeeded")]) is None


def test_failed_lower_version_keeps_blocking_with_its_state() -> None:
    blocked = apply_blocker(peer("m2", "2"), [peer("m1", "1", "Failed")])
    assert blocked is not None and "Failed" in blocked.message


def test_other_databases_and_rolled_back_or_dry_run_peers_do_not_block() -> None:
    others = [
        peer("x", "1", db=OTHER_DB),
        peer("r", "1", rollback=True),
        peer("d", "1", dry_run=True),
    ]
    assert apply_blocker(peer("m2", "2"), others) is None


def test_depends_on_waits_for_the_dependency_and_names_it() -> None:
    blocked = apply_blocker(peer("b", "1", depends_on=("a",)), [peer("a", "5", "Pending")])
    assert blocked is not None
    assert (blocked.reason, blocked.waiting_for) == ("WaitingForDependency", "a")
    missing = apply_blocker(peer("b", "1", depends_on=("zz",)), [])
    assert missing is not None and "not found" in missing.message


def test_duplicate_version_refuses_the_younger_one() -> None:
    old, young = peer("old", "001", created="t1"), peer("young", "1", created="t2")
    assert apply_blocker(old, [young]) is None
    blocked = apply_blocker(young, [old])
    assert blocked is not None and blocked.permanent and blocked.reason == "DuplicateVersion"


@pytest.mark.parametrize("names", [("a", "a"), ("a", "b", "a")])
def test_dependency_cycles_are_permanent(names: tuple[str, ...]) -> None:
    chain = list(names)
    peers = {n: peer(n, str(i + 1)) for i, n in enumerate(dict.fromkeys(chain))}
    for here, there in itertools.pairwise(chain):
        p = peers[here]
        peers[here] = peer(p.name, p.version, depends_on=(*p.depends_on, there))
    me = peers[chain[0]]
    blocked = apply_blocker(me, [p for n, p in peers.items() if n != me.name])
    assert blocked is not None and blocked.permanent and blocked.reason == "DependencyCycle"


def test_rollback_waits_for_applied_dependents() -> None:
    base = peer("base", "1", "Succeeded", rollback=True)
    dependent = peer("dep", "2", "Succeeded", depends_on=("base",))
    blocked = rollback_blocker(base, [dependent])
    assert blocked is not None and blocked.reason == "RollbackBlocked" and "dep" in blocked.message
    rolled = peer("dep", "2", "RolledBack", rollback=True, depends_on=("base",))
    assert rollback_blocker(base, [rolled]) is None


def test_rollbacks_run_newest_first() -> None:
    one = peer("one", "1", "Succeeded", rollback=True)
    two = peer("two", "2", "Succeeded", rollback=True)
    assert rollback_blocker(two, [one]) is None
    blocked = rollback_blocker(one, [two])
    assert blocked is not None and blocked.reason == "WaitingForLaterRollback"
