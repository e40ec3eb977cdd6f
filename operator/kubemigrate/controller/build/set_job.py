"""Pure builders for a MigrationSet: its merged source, the one Job that runs it, and the
DatabaseBackup taken before it.

The Job runs ``kubemigrate run-set DIR`` from the operator's image. DIR is a projected volume
of the set's ConfigMaps, every key mapped to a file of the same name (the operator refuses a
file name found in two ConfigMaps before any Job exists), or, for an image source, an emptyDir
that an init container from the application's image fills with a copy of its directory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubemigrate.controller.build.jobs import (
    WORK_DIR,
    JobRequest,
    Owner,
    build_job,
    job_name,
    owner_reference,
)
from kubemigrate.controller.build.labels import label_value
from kubemigrate.models import API_VERSION, GROUP
from kubemigrate.models.base import duration_seconds
from kubemigrate.models.migration_set import MigrationSetSpec
from kubemigrate.settings import Settings

COMPONENT = "run"
SOURCE_DIR = f"{WORK_DIR}/migrations"
COPY_DIR = f"{WORK_DIR}/copy"
SOURCE_VOLUME = "migrations"
KEY_LENGTH = 10


@dataclass(frozen=True)
class MergedSource:
    """The files of a set's ConfigMaps: file name -> content, and which ConfigMap has it."""

    files: dict[str, str]
    origin: dict[str, str]
    problems: list[str]


def merge(configmaps: Sequence[tuple[str, Mapping[str, str]]]) -> MergedSource:
    """The ConfigMaps' keys as one directory; a file name in two of them is a problem naming
    both (the directory the CLI reads cannot hold two files of one name)."""
    files: dict[str, str] = {}
    origin: dict[str, str] = {}
    problems: list[str] = []
    for name, data in configmaps:
        for key, value in sorted(data.items()):
            if key in origin:
                problems.append(f"file {key} is in ConfigMap {origin[key]} and ConfigMap {name}")
                continue
            files[key], origin[key] = value, name
    return MergedSource(files, origin, problems)


def run_key(*parts: object) -> str:
    """A short digest of what a run is for (source checksum, target, generation): one Job per
    distinct run, adopted after a restart, and a new one when any part changes."""
    text = "\0".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def run_job_name(owner: Owner, key: str, attempt: int = 0) -> str:
    return job_name(owner, f"{COMPONENT}-{key}", attempt)


def _args(
    owner: Owner, spec: MigrationSetSpec, target: str | None, settings: Settings
) -> list[str]:
    args = [
        "run-set",
        SOURCE_DIR,
        "--history-schema",
        spec.history_schema,
        "--lock-wait",
        str(settings.lock_wait_seconds),
        "--resource-name",
        owner.name,
        "--resource-uid",
        owner.uid,
        "--resource-generation",
        str(owner.generation),
        "--actor",
        f"kubemigrate-operator/{owner.namespace}/{owner.name}",
    ]
    if target is not None:
        args += ["--target", target]
    if spec.dry_run:
        args.append("--dry-run")
    if spec.allow_out_of_order:
        args.append("--allow-out-of-order")
    if not spec.preflight.enabled:
        args.append("--no-preflight")
    timeouts = spec.timeouts
    lock = settings.lock_timeout_seconds
    statement = settings.statement_timeout_seconds
    if timeouts is not None and timeouts.lock:
        lock = duration_seconds(timeouts.lock)
    if timeouts is not None and timeouts.statement:
        statement = duration_seconds(timeouts.statement)
    args += ["--lock-timeout", f"{lock:g}"]
    if statement:
        args += ["--statement-timeout", f"{statement:g}"]
    return args


def _configmap_volume(keys: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    sources = [
        {"configMap": {"name": name, "items": [{"key": k, "path": k} for k in sorted(files)]}}
        for name, files in keys.items()
    ]
    return {"name": SOURCE_VOLUME, "projected": {"sources": sources}}


def set_job(
    owner: Owner,
    spec: MigrationSetSpec,
    settings: Settings,
    *,
    keys: Mapping[str, Sequence[str]],
    target: str | None,
    run: str,
    attempt: int = 0,
) -> dict[str, Any]:
    """The run's Job: keys maps each ConfigMap to its file names (empty for an image source)."""
    image = spec.source.image
    volume = _configmap_volume(keys) if image is None else {"name": SOURCE_VOLUME, "emptyDir": {}}
    secret = spec.database.secret_ref if spec.database is not None else None
    request = JobRequest(
        f"{COMPONENT}-{run}",
        _args(owner, spec, target, settings),
        secret.name if secret is not None else "",  # a fleet's workers read their own
        secret.key if secret is not None else "",
        [volume],
        [{"name": SOURCE_VOLUME, "mountPath": SOURCE_DIR, "readOnly": image is None}],
        settings.job_active_deadline_seconds,
        attempt=attempt,
    )
    job = build_job(owner, request, settings)
    job["spec"]["backoffLimit"] = 0  # a run is retried by the operator, as a new attempt
    if image is not None:
        _copy_from_image(job["spec"]["template"]["spec"], image.reference, image.path, spec)
    return job


def _copy_from_image(
    pod: dict[str, Any], reference: str, path: str, spec: MigrationSetSpec
) -> None:
    """An init container from the application's image copies its directory into the volume."""
    image = spec.source.image
    assert image is not None
    init: dict[str, Any] = {
        "name": "copy-migrations",
        "image": reference,
        "command": ["cp", "-R", f"{path.rstrip('/')}/.", f"{SOURCE_DIR}/"],
        "volumeMounts": [{"name": SOURCE_VOLUME, "mountPath": SOURCE_DIR}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "128Mi"}},
    }
    if image.pull_policy is not None:
        init["imagePullPolicy"] = image.pull_policy
    pod["initContainers"] = [init]
    if image.pull_secrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in image.pull_secrets]


def backup_name(owner: Owner) -> str:
    """``<set>-pre-<run>``: one backup per run."""
    return job_name(owner, "pre")


def backup_manifest(owner: Owner, spec: MigrationSetSpec, name: str) -> dict[str, Any]:
    """The DatabaseBackup taken once before a run (spec.backup.storage must be set)."""
    assert spec.backup is not None and spec.backup.storage is not None
    assert spec.database is not None
    return {
        "apiVersion": API_VERSION,
        "kind": "DatabaseBackup",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "kubemigrate",
                f"{GROUP}/migrationset": label_value(owner.name),
            },
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "database": spec.database.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "storage": spec.backup.storage.model_dump(
                by_alias=True, exclude_none=True, mode="json"
            ),
        },
    }
