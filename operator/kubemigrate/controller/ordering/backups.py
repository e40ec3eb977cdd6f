"""Whose turn it is among backups of one database, and which backups retention removes.

Backups of one database (same namespace, Secret and key) run one at a time, oldest first by
creationTimestamp (then name), like Migrations in `queue`: two pg_dumps of one database at once
only double the load for two copies of nearly the same data. The operator keeps every
DatabaseBackup in an in-memory index as a `BackupPeer`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubemigrate.models.backup import BackupPhase

TERMINAL: frozenset[str] = frozenset({BackupPhase.SUCCEEDED, BackupPhase.FAILED})


@dataclass(frozen=True)
class BackupKey:
    """What makes two backups back up the same database."""

    namespace: str
    secret: str
    key: str

    def __str__(self) -> str:
        return f"{self.secret}[{self.key}]"


@dataclass(frozen=True)
class BackupPeer:
    """One DatabaseBackup as the index sees it."""

    name: str
    uid: str
    database: BackupKey
    created: str
    phase: str | None
    completed: str = ""
    owner_kind: str = ""
    """The kind of the object that owns it (Migration for a pre-migration backup), if any."""

    @property
    def done(self) -> bool:
        return self.phase in TERMINAL

    @property
    def order(self) -> tuple[str, str]:
        return (self.created, self.name)


BackupIndex = Mapping[BackupKey, Collection[BackupPeer]]
"""kopf's index of every DatabaseBackup by its database (a dict in tests)."""


def backup_peer_of(body: Mapping[str, Any]) -> BackupPeer:
    """The index entry of a DatabaseBackup, from its raw body."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    ref = (spec.get("database") or {}).get("secretRef") or {}
    owners = meta.get("ownerReferences") or []
    return BackupPeer(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        database=BackupKey(
            str(meta.get("namespace", "")), str(ref.get("name", "")), str(ref.get("key", "url"))
        ),
        created=str(meta.get("creationTimestamp", "")),
        phase=status.get("phase"),
        completed=str(status.get("completedAt") or ""),
        owner_kind=str(owners[0].get("kind", "")) if owners else "",
    )


def ahead_of(me: BackupPeer, peers: Iterable[BackupPeer]) -> BackupPeer | None:
    """The backup me waits for: one already running, else the oldest unfinished older one."""
    others = [p for p in peers if p.database == me.database and p.uid != me.uid and not p.done]
    running = [p for p in others if p.phase == BackupPhase.RUNNING]
    if running:
        return min(running, key=lambda p: p.order)
    older = [p for p in others if p.order < me.order]
    return min(older, key=lambda p: p.order) if older else None


def to_prune(keep_last: int, me: BackupPeer, peers: Iterable[BackupPeer]) -> list[str]:
    """Succeeded backups of me's database beyond the newest keep_last (me included), oldest
    first. Pre-migration backups are a Migration's restore point and go with it, so they
    neither count nor get pruned."""
    same = {
        p.uid: p
        for p in peers
        if p.database == me.database
        and p.phase == BackupPhase.SUCCEEDED
        and p.owner_kind != "Migration"
    }
    same[me.uid] = me
    newest_first = sorted(same.values(), key=lambda p: (p.completed, *p.order), reverse=True)
    return [p.name for p in reversed(newest_first[keep_last:])]


def ttl_left(completed_at: datetime | None, ttl: timedelta, now: datetime) -> float | None:
    """Seconds until a finished backup's TTL runs out (<= 0: now); None if it has not ended."""
    if completed_at is None:
        return None
    return (completed_at + ttl - now).total_seconds()
