"""Pure builders of the backup, restore and file-cleanup Jobs, and their results as status fields.

A backup lives on the PersistentVolumeClaim named in its spec, at one path per backup,
``[<path>/]<namespace>/<name>-<uid[:8]>.<ext>``, so two backups never share a file and a
re-created backup of the same name never finds an old one. Status records it as
``pvc://<claim>/<relative path>``: a location that says where, independent of any pod's mounts,
and leaves room for ``s3://`` later. Every Job mounts the claim at ``MOUNT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubemigrate.controller.build.jobs import JobRequest, Owner
from kubemigrate.jobresult import Outcome
from kubemigrate.models.backup import DatabaseBackupSpec

BACKUP, RESTORE, CLEANUP = "backup", "restore", "cleanup"
MOUNT = "/backups"
VOLUME = "backups"
SCHEME = "pvc://"
EXTENSIONS = {"custom": "dump", "plain": "sql", "directory": "dir"}
CLEANUP_DEADLINE = 300


@dataclass(frozen=True)
class Place:
    """A backup file: the claim it is on and its path relative to the claim's root."""

    claim: str
    path: str

    @property
    def location(self) -> str:
        return f"{SCHEME}{self.claim}/{self.path}"

    @property
    def in_pod(self) -> str:
        return f"{MOUNT}/{self.path}"


def place_of(spec: DatabaseBackupSpec, namespace: str, name: str, uid: str) -> Place:
    """Where a backup's file goes, from its spec and identity."""
    pvc = spec.storage.persistent_volume_claim
    assert pvc is not None  # the model requires exactly one kind of storage
    parts = [p for p in (pvc.path, namespace, f"{name}-{uid[:8]}.{EXTENSIONS[spec.format]}") if p]
    return Place(pvc.claim_name, "/".join(parts))


def parse_location(location: str | None) -> Place | None:
    """The Place of a ``pvc://claim/path`` location; None for anything else."""
    if not location or not location.startswith(SCHEME):
        return None
    claim, _, path = location[len(SCHEME) :].partition("/")
    return Place(claim, path) if claim and path else None


def _volume(place: Place, *, read_only: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    claim: dict[str, Any] = {"claimName": place.claim}
    if read_only:
        claim["readOnly"] = True
    return (
        [{"name": VOLUME, "persistentVolumeClaim": claim}],
        [{"name": VOLUME, "mountPath": MOUNT, "readOnly": read_only}],
    )


def backup_request(spec: DatabaseBackupSpec, place: Place) -> JobRequest:
    """``kubemigrate backup`` into place, always verified with pg_restore --list; with
    verify.restore also restored into a scratch database on the same server."""
    args = ["backup", "--output", place.in_pod, "--format", spec.format.value, "--verify", "--json"]
    if spec.verify.restore:
        args.append("--test-restore")
    volumes, mounts = _volume(place, read_only=False)
    ref = spec.database.secret_ref
    return JobRequest(
        BACKUP, args, ref.name, ref.key, volumes, mounts, spec.active_deadline_seconds
    )


def restore_request(
    place: Place, secret: str, key: str, *, clean: bool, deadline: int
) -> JobRequest:
    """``kubemigrate restore`` of place into the database of secret[key]."""
    args = ["restore", place.in_pod, "--json", *(["--clean"] if clean else [])]
    volumes, mounts = _volume(place, read_only=True)
    return JobRequest(RESTORE, args, secret, key, volumes, mounts, deadline)


def cleanup_request(place: Place) -> JobRequest:
    """``kubemigrate delete-backup``: no database, no Secret, and no owner, because it runs
    while its DatabaseBackup is being deleted and must not be garbage-collected with it."""
    volumes, mounts = _volume(place, read_only=False)
    return JobRequest(
        CLEANUP,
        ["delete-backup", place.in_pod, "--json"],
        "",
        "",
        volumes,
        mounts,
        CLEANUP_DEADLINE,
        owned=False,
    )


def cleanup_owner(name: str, namespace: str, uid: str) -> Owner:
    """Named after the backup's uid, not its generation: a later backup of the same name never
    adopts an earlier backup's (unowned, still listed) cleanup Job."""
    return Owner("DatabaseBackup", f"{name}-{uid[:8]}", namespace, uid, 0)


def backup_fields(outcome: Outcome, place: Place) -> dict[str, Any]:
    """Status fields of a finished backup; location and sha256 only when it succeeded, so a
    failed run never looks like a usable backup."""
    d = outcome.data
    fields: dict[str, Any] = {
        "serverVersion": d.get("serverVersion"),
        "verified": d.get("verified") if outcome.ok else False,
        "location": place.location if outcome.ok else None,
        "sha256": d.get("sha256") if outcome.ok else None,
        "sizeBytes": d.get("sizeBytes") if outcome.ok else None,
    }
    if isinstance(d.get("verification"), dict):
        fields["verification"] = verification(d["verification"])
    return {k: v for k, v in fields.items() if v is not None or k in ("location", "sha256")}


def restore_fields(outcome: Outcome) -> dict[str, Any]:
    """Status fields of a finished restore: what arrived and whether the counts match."""
    d = outcome.data
    if d.get("tables") is None:
        return {}
    return {"verification": verification(d)}


def verification(d: dict[str, Any]) -> dict[str, Any]:
    """status.verification from the CLI's tables/rows/matched/mismatches (matched is null when
    the backup recorded no counts: nothing to compare, so nothing mismatched)."""
    return {
        "tables": int(d.get("tables") or 0),
        "rows": int(d.get("rows") or 0),
        "matched": d.get("matched") is not False,
        "mismatches": list(d.get("mismatches") or [])[:100],
    }
