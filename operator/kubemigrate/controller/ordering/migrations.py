"""Whose turn it is: the pure ordering rules for Migrations of one database.

Migrations of one database (same namespace, Secret, key and history schema) apply one at a time
in version order, after their `dependsOn`; rollbacks run newest first and wait for later
migrations that depend on them. The operator keeps an in-memory index of every Migration as a
`Peer` and asks `blocker()` before doing anything; the answer is what status shows a Pending
migration waiting for. The index maps each database to its Migrations (`PeerIndex`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubemigrate.engine import version_key
from kubemigrate.models.migration import MigrationPhase

APPLIED = MigrationPhase.SUCCEEDED
ROLLED_BACK = MigrationPhase.ROLLED_BACK


@dataclass(frozen=True)
class DatabaseKey:
    """What makes two Migrations target the same database history."""

    namespace: str
    secret: str
    key: str
    history_schema: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.secret}[{self.key}] ({self.history_schema})"


@dataclass(frozen=True)
class Peer:
    """One Migration as the index sees it."""

    name: str
    version: str
    database: DatabaseKey
    phase: str | None
    rollback: bool
    dry_run: bool
    depends_on: tuple[str, ...]
    created: str = ""
    settled: bool = False
    """status.observedGeneration == metadata.generation: the phase describes the current spec."""
    uid: str = ""
    waiting_for: str | None = None
    """status.waitingFor: what its status says it waits for (its message names that one's
    phase, so that one's phase changes wake it)."""

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version)

    @property
    def applied(self) -> bool:
        return self.phase == APPLIED and not self.rollback and self.settled

    @property
    def wants_applied(self) -> bool:
        return not self.rollback and not self.dry_run


PeerIndex = Mapping[DatabaseKey, Collection[Peer]]
"""kopf's index of every Migration by its database (a dict in tests)."""


@dataclass(frozen=True)
class Blocker:
    """Why a migration must wait (reason is one CamelCase word), or refuse (permanent)."""

    reason: str
    message: str
    waiting_for: str
    permanent: bool = False


def _same_db(me: Peer, peers: Iterable[Peer]) -> list[Peer]:
    return [p for p in peers if p.database == me.database and p.name != me.name]


def _cycle(me: Peer, by_name: Mapping[str, Peer]) -> list[str] | None:
    """A dependsOn cycle through me, as the chain of names, or None."""
    stack: list[tuple[str, tuple[str, ...]]] = [(me.name, (me.name,))]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        peer = by_name.get(name)
        for dep in peer.depends_on if peer else ():
            if dep == me.name:
                return [*path, dep]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, (*path, dep)))
    return None


def apply_blocker(me: Peer, peers: Iterable[Peer]) -> Blocker | None:
    """What must happen before me can be applied (or dry-run), or None if it may go now."""
    everyone = list(peers)
    by_name = {p.name: p for p in everyone if p.database.namespace == me.database.namespace}
    by_name[me.name] = me
    cycle = _cycle(me, by_name)
    if cycle:
        chain = " -> ".join(cycle)
        return Blocker("DependencyCycle", f"dependsOn forms a cycle: {chain}", chain, True)
    same = _same_db(me, everyone)
    for other in same:
        if other.key == me.key and (other.created, other.name) < (me.created, me.name):
            return Blocker(
                "DuplicateVersion",
                f"version {me.version} is already claimed by Migration {other.name} "
                "on the same database",
                other.name,
                True,
            )
    for dep in me.depends_on:
        peer = by_name.get(dep)
        if peer is None:
            return Blocker("WaitingForDependency", f"waiting for dependency {dep}: not found", dep)
        if not peer.applied:
            state = peer.phase or "not started"
            return Blocker(
                "WaitingForDependency",
                f"waiting for dependency {dep} (version {peer.version}, {state})",
                dep,
            )
    earlier = sorted(
        (p for p in same if p.wants_applied and p.key < me.key and not p.applied),
        key=lambda p: p.key,
    )
    if earlier:
        first = earlier[0]
        state = first.phase or "not started"
        return Blocker(
            "WaitingForEarlierVersion",
            f"waiting for version {first.version} (Migration {first.name}, {state}) "
            "to be applied first",
            first.name,
        )
    return None


def rollback_blocker(me: Peer, peers: Iterable[Peer]) -> Blocker | None:
    """What must happen before me can be rolled back, or None if it may go now."""
    same = _same_db(me, peers)
    dependents = sorted(p.name for p in same if me.name in p.depends_on and p.applied)
    if dependents:
        names = ", ".join(dependents)
        return Blocker(
            "RollbackBlocked",
            f"applied Migration(s) {names} depend on it; roll them back first",
            names,
        )
    later = sorted(
        (p for p in same if p.rollback and p.key > me.key and p.phase != ROLLED_BACK),
        key=lambda p: p.key,
        reverse=True,
    )
    if later:
        first = later[0]
        return Blocker(
            "WaitingForLaterRollback",
            f"waiting for the rollback of version {first.version} (Migration "
            f"{first.name}) first: rollbacks run newest first",
            first.name,
        )
    return None


def next_up(peers: Iterable[Peer]) -> list[Peer]:
    """The migrations of one database that may be able to move now: the lowest version still to
    apply, the newest rollback still to run, and every dry run. Waking only these keeps a queue
    of hundreds from waking each other all at once."""
    everyone = list(peers)
    todo = sorted((p for p in everyone if p.wants_applied and not p.applied), key=lambda p: p.key)
    undo = sorted(
        (p for p in everyone if p.rollback and p.phase != ROLLED_BACK),
        key=lambda p: p.key,
        reverse=True,
    )
    return todo[:1] + undo[:1] + [p for p in everyone if p.dry_run and not p.settled]


def waiting_on(me: Peer, index: PeerIndex) -> list[Peer]:
    """The Migrations of me's namespace, in any database, whose status says they wait for me
    (for my version to be applied, or as a dependency): their message names my phase, so each
    of my phase changes must reach them, not only my settling."""
    namespace = me.database.namespace
    return [
        peer
        for database, peers in index.items()
        if database.namespace == namespace
        for peer in peers
        if peer.waiting_for == me.name and peer.uid != me.uid
    ]


def peer_of(body: Mapping[str, Any]) -> Peer:
    """The index entry of a Migration object, read from its raw body (no validation: the API
    server validated it, and this runs on every watch event)."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    return Peer(
        name=meta.get("name", ""),
        version=str(spec.get("version", "0")),
        database=database_key(meta.get("namespace", ""), spec),
        phase=status.get("phase"),
        rollback=bool(spec.get("rollback", False)),
        dry_run=bool(spec.get("dryRun", False)),
        depends_on=tuple(spec.get("dependsOn") or ()),
        created=str(meta.get("creationTimestamp", "")),
        settled=status.get("observedGeneration") == meta.get("generation"),
        uid=meta.get("uid", ""),
        waiting_for=status.get("waitingFor"),
    )


def database_key(namespace: str, spec: Mapping[str, Any]) -> DatabaseKey:
    """The queue a Migration belongs to."""
    ref = (spec.get("database") or {}).get("secretRef") or {}
    return DatabaseKey(
        namespace,
        str(ref.get("name", "")),
        str(ref.get("key", "url")),
        str(spec.get("historySchema", "kubemigrate")),
    )
