"""One backup at a time per database, oldest first; keepLast; TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubemigrate.controller.ordering.backups import (
    BackupKey,
    BackupPeer,
    ahead_of,
    backup_peer_of,
    to_prune,
    ttl_left,
)

DB = BackupKey("ns", "db", "url")
OTHER = BackupKey("ns", "other", "url")


def peer(
    name: str,
    created: str,
    phase: str | None = None,
    *,
    db: BackupKey = DB,
    completed: str = "",
    owner_kind: str = "",
) -> BackupPeer:
    return BackupPeer(name, f"uid-{name}", db, created, phase, completed, owner_kind)


def test_peer_of_a_body() -> None:
    body = {
        "metadata": {
            "name": "b",
            "namespace": "ns",
            "uid": "u",
            "creationTimestamp": "2024-12-20T00:00:00Z",
            "ownerReferences": [{"kind": "Migration", "uid": "m"}],
        },
        "spec": {"database": {"secretRef": {"name": "db"}}},
        "status": {"phase": "Succeeded", "completedAt": "2024-12-20T00:01:00Z"},
    }
    p = backup_peer_of(body)
    assert p.database == DB and p.done and p.owner_kind == "Migration"
    assert p.completed == "2024-12-20T00:01:00Z"


def test_oldest_first_and_one_at_a_time() -> None:
    a, b, c = peer("a", "t1"), peer("b", "t2"), peer("c", "t3")
    assert ahead_of(a, [a, b, c]) is None
    assert ahead_of(c, [a, b, c]) == a
    # a newer backup already running blocks an older pending one (it started first).
    assert ahead_of(a, [a, peer("b", "t2", "Running")]).name == "b"  # type: ignore[union-attr]
    # finished backups and other databases do not block.
    assert ahead_of(c, [peer("a", "t1", "Failed"), peer("b", "t2", "Succeeded"), c]) is None
    assert ahead_of(c, [peer("x", "t0", "Running", db=OTHER), c]) is None
    # equal timestamps: by name.
    assert ahead_of(peer("b", "t1"), [peer("a", "t1"), peer("b", "t1")]).name == "a"  # type: ignore[union-attr]


def test_keep_last_prunes_the_oldest_succeeded_only() -> None:
    done = [peer(f"b{i}", f"t{i}", "Succeeded", completed=f"c{i}") for i in range(1, 5)]
    me = done[-1]
    others = [
        peer("failed", "t0", "Failed"),
        peer("other-db", "t0", "Succeeded", db=OTHER, completed="c0"),
        peer("pre", "t0", "Succeeded", completed="c0", owner_kind="Migration"),
    ]
    assert to_prune(2, me, done + others) == ["b1", "b2"]
    assert to_prune(5, me, done) == []
    assert to_prune(1, me, [*done[:1], me]) == ["b1"]


def test_ttl() -> None:
    now = datetime(2024, 12, 20, 12, tzinfo=UTC)
    assert ttl_left(None, timedelta(hours=1), now) is None
    assert ttl_left(datetime(2024, 12, 20, 11, 30, tzinfo=UTC), timedelta(hours=1), now) == 1800
    left = ttl_left(datetime(2024, 12, 20, 10, tzinfo=UTC), timedelta(hours=1), now)
    assert left is not None and left < 0
