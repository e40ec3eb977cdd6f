"""Pure builders of the backup, restore and file-cleanup Jobs, and their results as status fields.

A backup lives on the PersistentVolumeClaim named in its spec, at one path per backup,
``[<path>/]<namespace>/<name>-<uid[:8]>.<ext>``, so two backups never share a file and a
re-created backup of the same name never finds an old one. Status records it as
``pvc://<claim>/<relative path>``: a location that says where, independent of any pod's mounts,
and every Job mounts the claim at ``MOUNT``.

A backup in object storage is the object ``[<prefix>/]<namespace>/<name>-<uid[:8]>.<ext>`` of
its bucket, recorded as ``s3://<bucket>/<key>``. Its Jobs mount nothing: they get the endpoint,
region and addressing style as plain env and the access key pair through ``secretKeyRef`` (so
no credential is in the Job spec, the status or the operator's memory), or, without a
secretRef, nothing at all: the pod's workload identity answers (see ``engine.objstore``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubemigrate.controller.build.jobs import JobRequest, Owner, SecretEnv
from kubemigrate.jobresult import Outcome
from kubemigrate.models.backup import DatabaseBackupSpec
from kubemigrate.models.storage import BackupStorage, ObjectStoreStorage

BACKUP, RESTORE, CLEANUP = "backup", "restore", "cleanup"
MOUNT = "/backups"
VOLUME = "backups"
SCHEME = "pvc://"
S3 = "s3://"
EXTENSIONS = {"custom": "dump", "plain": "sql", "directory": "dir"}
OBJECT_EXTENSIONS = {**EXTENSIONS, "directory": "tar"}  # a directory dump is one tar object
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


@dataclass(frozen=True)
class ObjectPlace:
    """A backup object: the storage spec it is in (for the Job's env) and its full key."""

    store: ObjectStoreStorage
    key: str

    @property
    def location(self) -> str:
        return f"{S3}{self.store.bucket}/{self.key}"

    @property
    def in_pod(self) -> str:
        return self.location


Where = Place | ObjectPlace


def place_of(spec: DatabaseBackupSpec, namespace: str, name: str, uid: str) -> Where:
    """Where a backup's file or object goes, from its spec and identity."""
    store = spec.storage.object_store
    if store is not None:
        leaf = f"{name}-{uid[:8]}.{OBJECT_EXTENSIONS[spec.format]}"
        return ObjectPlace(store, "/".join(p for p in (store.prefix, namespace, leaf) if p))
    pvc = spec.storage.persistent_volume_claim
    assert pvc is not None  # the model requires exactly one kind of storage
    parts = [p for p in (pvc.path, namespace, f"{name}-{uid[:8]}.{EXTENSIONS[spec.format]}") if p]
    return Place(pvc.claim_name, "/".join(parts))


def object_place(store: ObjectStoreStorage, key: str) -> ObjectPlace:
    """A backup object named by its key under store's prefix (a DatabaseRestore's source)."""
    return ObjectPlace(store, "/".join(p for p in (store.prefix, key) if p))


def parse_location(location: str | None, storage: BackupStorage | None = None) -> Where | None:
    """The place of a ``pvc://claim/path`` location, or of ``s3://bucket/key`` in storage's
    bucket; None for anything else."""
    if location and location.startswith(S3) and storage and storage.object_store:
        bucket, _, key = location[len(S3) :].partition("/")
        ok = bucket == storage.object_store.bucket and key
        return ObjectPlace(storage.object_store, key) if ok else None
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


def credential_keys(store: ObjectStoreStorage) -> list[str]:
    """The Secret keys a Job reads (none: workload identity)."""
    ref = store.secret_ref
    if ref is None:
        return []
    keys = [ref.access_key_id_key, ref.secret_access_key_key]
    return [*keys, ref.session_token_key] if ref.session_token_key else keys


def storage_env(store: ObjectStoreStorage) -> tuple[dict[str, str], list[SecretEnv]]:
    """The standard S3 client variables for a Job: plain settings, and credentials by
    reference to their Secret."""
    plain = {"AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false" if store.force_path_style else "true"}
    if store.endpoint:
        plain["AWS_ENDPOINT_URL"] = store.endpoint
    if store.region:
        plain["AWS_REGION"] = store.region
    ref = store.secret_ref
    if ref is None:
        return plain, []
    secret = [
        SecretEnv("AWS_ACCESS_KEY_ID", ref.name, ref.access_key_id_key),
        SecretEnv("AWS_SECRET_ACCESS_KEY", ref.name, ref.secret_access_key_key),
    ]
    if ref.session_token_key:
        secret.append(SecretEnv("AWS_SESSION_TOKEN", ref.name, ref.session_token_key))
    return plain, secret


@dataclass(frozen=True)
class _Mounted:
    """What a Job needs to reach a place: volumes and mounts, or env."""

    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    env: dict[str, str]
    secret_env: list[SecretEnv]


def _reach(where: Where, *, read_only: bool) -> _Mounted:
    if isinstance(where, ObjectPlace):
        env, secret_env = storage_env(where.store)
        return _Mounted([], [], env, secret_env)
    volumes, mounts = _volume(where, read_only=read_only)
    return _Mounted(volumes, mounts, {}, [])


def backup_request(spec: DatabaseBackupSpec, place: Where) -> JobRequest:
    """``kubemigrate backup`` into place, always verified with pg_restore --list; with
    verify.restore also restored into a scratch database on the same server."""
    args = ["backup", "--output", place.in_pod, "--format", spec.format.value, "--verify", "--json"]
    if spec.verify.restore:
        args.append("--test-restore")
    if spec.jobs and spec.jobs > 1:
        args += ["--jobs", str(spec.jobs)]
    if spec.compress is not None:
        args += ["--compress", spec.compress]
    reach = _reach(place, read_only=False)
    ref = spec.database.secret_ref
    return JobRequest(
        BACKUP,
        args,
        ref.name,
        ref.key,
        reach.volumes,
        reach.mounts,
        spec.active_deadline_seconds,
        extra_env=reach.env,
        secret_env=reach.secret_env,
    )


def restore_request(
    place: Where, secret: str, key: str, *, clean: bool, deadline: int, jobs: int | None = None
) -> JobRequest:
    """``kubemigrate restore`` of place into the database of secret[key]."""
    args = ["restore", place.in_pod, "--json", *(["--clean"] if clean else [])]
    if jobs and jobs > 1:
        args += ["--jobs", str(jobs)]
    reach = _reach(place, read_only=True)
    return JobRequest(
        RESTORE,
        args,
        secret,
        key,
        reach.volumes,
        reach.mounts,
        deadline,
        extra_env=reach.env,
        secret_env=reach.secret_env,
    )


def cleanup_request(place: Where) -> JobRequest:
    """``kubemigrate delete-backup``: no database, no database Secret, and no owner, because it
    runs while its DatabaseBackup is being deleted and must not be garbage-collected with it."""
    reach = _reach(place, read_only=False)
    return JobRequest(
        CLEANUP,
        ["delete-backup", place.in_pod, "--json"],
        "",
        "",
        reach.volumes,
        reach.mounts,
        CLEANUP_DEADLINE,
        extra_env=reach.env,
        secret_env=reach.secret_env,
        owned=False,
    )


def cleanup_owner(name: str, namespace: str, uid: str) -> Owner:
    """Named after the backup's uid, not its generation: a later backup of the same name never
    adopts an earlier backup's (unowned, still listed) cleanup Job."""
    return Owner("DatabaseBackup", f"{name}-{uid[:8]}", namespace, uid, 0)


def backup_fields(outcome: Outcome, place: Where) -> dict[str, Any]:
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
