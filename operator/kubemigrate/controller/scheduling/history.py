"""A schedule's own DatabaseBackups: which are active, which succeeded or failed last, and
which its history limits delete (a deleted DatabaseBackup takes its backup file with it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubemigrate.models import GROUP
from kubemigrate.models.backup import BackupPhase

SCHEDULED_AT = f"{GROUP}/scheduled-at"
"""The annotation holding the scheduled time of a backup a schedule created."""
SCHEDULE_LABEL = f"{GROUP}/schedule"


@dataclass(frozen=True)
class Child:
    """One DatabaseBackup owned by the schedule."""

    name: str
    phase: str | None
    scheduled: datetime
    completed: datetime | None

    @property
    def active(self) -> bool:
        return self.phase not in (BackupPhase.SUCCEEDED, BackupPhase.FAILED)


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def children(uid: str, backups: Iterable[Mapping[str, Any]]) -> list[Child]:
    """The backups whose controller owner is the schedule of uid, oldest scheduled first."""
    out = []
    for body in backups:
        meta = body.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        if not any(r.get("uid") == uid and r.get("controller") for r in refs):
            continue
        status = body.get("status") or {}
        created = parse_time(meta.get("creationTimestamp")) or datetime.fromtimestamp(0, UTC)
        out.append(
            Child(
                name=str(meta.get("name", "")),
                phase=status.get("phase"),
                scheduled=parse_time((meta.get("annotations") or {}).get(SCHEDULED_AT)) or created,
                completed=parse_time(status.get("completedAt")),
            )
        )
    return sorted(out, key=lambda c: (c.scheduled, c.name))


def to_prune(kids: Sequence[Child], keep_succeeded: int, keep_failed: int) -> list[str]:
    """Finished backups beyond the newest keep_succeeded / keep_failed, oldest first."""
    succeeded = [c for c in kids if c.phase == BackupPhase.SUCCEEDED]
    failed = [c for c in kids if c.phase == BackupPhase.FAILED]
    doomed = succeeded[: max(0, len(succeeded) - keep_succeeded)]
    doomed += failed[: max(0, len(failed) - keep_failed)]
    return [c.name for c in sorted(doomed, key=lambda c: (c.scheduled, c.name))]


def newest(kids: Sequence[Child], phase: BackupPhase) -> Child | None:
    """The most recently scheduled backup in phase."""
    found = [c for c in kids if c.phase == phase]
    return found[-1] if found else None


def failing(kids: Sequence[Child]) -> bool:
    """Whether the newest finished backup failed."""
    finished = [c for c in kids if not c.active]
    return bool(finished) and finished[-1].phase == BackupPhase.FAILED
