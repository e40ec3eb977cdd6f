"""Deciding what to run, from the history's state and the given sources; no database here.

Versions are matched by key (``"001"`` and ``"1"`` are one version), never by spelling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kubemigrate.engine.errors import InvalidSources
from kubemigrate.engine.migrate.history import VersionRecord
from kubemigrate.engine.migrate.results import DriftedVersion, State, VersionState
from kubemigrate.engine.migrate.sources import MigrationSource, SourceError, check_unique
from kubemigrate.engine.migrate.versions import version_key

Key = tuple[int, ...]
Records = Mapping[Key, VersionRecord]
Sources = Mapping[Key, MigrationSource]


def index_sources(sources: Iterable[MigrationSource]) -> dict[Key, MigrationSource]:
    """Sources by key, in version order; InvalidSources on duplicate versions."""
    try:
        ordered = check_unique(sources)
    except SourceError as exc:
        raise InvalidSources(str(exc)) from None
    return {s.key: s for s in ordered}


def parse_target(target: str | None) -> Key | None:
    if target is None:
        return None
    try:
        return version_key(target)
    except ValueError as exc:
        raise InvalidSources(f"invalid target version: {exc}") from None


def drifted(records: Records, sources: Sources) -> list[DriftedVersion]:
    """Applied versions whose source's checksum differs from the one recorded; one pass."""
    found = []
    for key, record in records.items():
        source = sources.get(key)
        if record.applied and source is not None and source.checksum != record.checksum:
            found.append(DriftedVersion(record.version, record.checksum, source.checksum))
    return sorted(found, key=lambda d: version_key(d.version))


def pending(records: Records, sources: Sources, target: Key | None = None) -> list[MigrationSource]:
    """Sources not applied now (never run, failed, rolled back), up to target, in order."""
    return [
        s
        for key, s in sorted(sources.items())
        if (target is None or key <= target)
        and not ((r := records.get(key)) is not None and r.applied)
    ]


def newest_applied(records: Records) -> VersionRecord | None:
    applied = [r for r in records.values() if r.applied]
    return max(applied, key=lambda r: r.key) if applied else None


def out_of_order(todo: Sequence[MigrationSource], records: Records) -> list[MigrationSource]:
    """Pending sources older than the newest applied version."""
    newest = newest_applied(records)
    return [s for s in todo if newest is not None and s.key < newest.key]


def schema_version(records: Records) -> str | None:
    newest = newest_applied(records)
    return newest.version if newest else None


def to_revert(
    records: Records,
    *,
    target: Key | None = None,
    steps: int | None = None,
    versions: Sequence[str] | None = None,
) -> list[VersionRecord]:
    """Applied versions to roll back, newest first, with those whose rollback stopped midway
    (a no-transaction migration's; they are finished first when they are the newest).

    ``versions``: exactly those that are applied; ``target``: every applied version above it
    (``"0"`` for all); ``steps``: the newest ``steps``, counted from where the history stands
    now (a run that stopped after reverting some leaves fewer to count from). With none given,
    the newest one.
    """
    applied = sorted(
        (r for r in records.values() if r.applied or r.rollback_incomplete),
        key=lambda r: r.key,
        reverse=True,
    )
    if versions is not None:
        keys = set()
        for v in versions:
            try:
                keys.add(version_key(v))
            except ValueError as exc:
                raise InvalidSources(f"invalid version to roll back: {exc}") from None
        return [r for r in applied if r.key in keys]
    if target is not None:
        return [r for r in applied if r.key > target]
    if steps is not None and steps < 0:
        raise InvalidSources(f"steps must be zero or more, not {steps}")
    return applied[: 1 if steps is None else steps]


def needs_repair(records: Records, sources: Sources) -> list[MigrationSource]:
    """Applied versions whose source's checksum or rollback availability changed."""
    return [
        s
        for key, s in sorted(sources.items())
        if (r := records.get(key)) is not None
        and r.applied
        and (r.checksum != s.checksum or r.rollback_available != s.rollback_available)
    ]


def states(
    records: Records, sources: Sources, unfinished: Mapping[Key, str] | None = None
) -> list[VersionState]:
    """Every version known to the history or the sources, in order, with where it stands;
    ``unfinished``: what the next run does with versions a run left midway."""
    unfinished = unfinished or {}
    out = []
    for key in sorted(records.keys() | sources.keys()):
        record, source = records.get(key), sources.get(key)
        if record is None:
            assert source is not None
            out.append(
                VersionState(
                    source.version,
                    source.description,
                    "pending",
                    source.checksum,
                    rollback_available=False,
                    source_checksum=source.checksum,
                )
            )
            continue
        state: State = record.state
        if record.applied and source is None:
            state = "missing"
        elif record.applied and source is not None and source.checksum != record.checksum:
            state = "drifted"
        rollback = (record.applied or record.rollback_incomplete) and (
            source.rollback_available if source is not None else record.rollback_available
        )
        out.append(
            VersionState(
                version=record.version,
                description=source.description if source is not None else record.description,
                state=state,
                checksum=record.checksum,
                applied_at=record.applied_at,
                duration_seconds=record.duration_ms / 1000
                if record.duration_ms is not None
                else None,
                rollback_available=rollback,
                source_checksum=source.checksum if source is not None else None,
                last_error=record.error if state in ("failed", "incomplete") else None,
                sqlstate=record.sqlstate if state in ("failed", "incomplete") else None,
                resume=unfinished.get(key),
            )
        )
    return out
