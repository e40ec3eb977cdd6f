"""Which versions a MigrationSet claims on its database, for the Migrations of that database: a
version in both a set and a Migration is refused by both, each naming the other.

The operator keeps a kopf index of every MigrationSet by its database (the same key as the
Migrations', `DatabaseKey`), from the versions its status lists (`status.versions`, written once
the set's source is read).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubemigrate.controller.ordering.migrations import Blocker, DatabaseKey, Peer, database_key
from kubemigrate.engine import version_key


@dataclass(frozen=True)
class SetPeer:
    """One MigrationSet as the index sees it: its name and the versions of its source."""

    name: str
    uid: str
    database: DatabaseKey
    versions: frozenset[tuple[int, ...]]


SetIndex = Mapping[DatabaseKey, Collection[SetPeer]]
"""kopf's index of every MigrationSet by its database."""


def set_peer_of(body: Mapping[str, Any]) -> SetPeer:
    """The index entry of a MigrationSet, from its raw body (unparseable versions skipped)."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    keys = set()
    for version in (body.get("status") or {}).get("versions") or ():
        try:
            keys.add(version_key(str(version)))
        except ValueError:
            continue
    return SetPeer(
        meta.get("name", ""),
        meta.get("uid", ""),
        database_key(meta.get("namespace", ""), spec),
        frozenset(keys),
    )


def set_claim(me: Peer, sets: Iterable[SetPeer]) -> Blocker | None:
    """A MigrationSet of me's database whose source holds me's version: me is refused."""
    for owner in sorted(sets, key=lambda s: s.name):
        if owner.database == me.database and me.key in owner.versions:
            return Blocker(
                "VersionConflict",
                f"version {me.version} is in both Migration {me.name} and MigrationSet "
                f"{owner.name} on database {me.database}: a version belongs to one resource; "
                "remove it from one of them",
                owner.name,
                True,
            )
    return None
