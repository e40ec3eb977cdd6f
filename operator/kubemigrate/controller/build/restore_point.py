"""Pure builders of a Migration's restore point: the DatabaseBackup taken before applying and
the DatabaseRestore that rolls the migration back by restoring it.

Both are owned by the Migration (they go with it) and named after its generation, so a
restarted operator finds the ones it already created instead of creating second ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubemigrate.controller.build.jobs import Owner, job_name, owner_reference
from kubemigrate.controller.build.labels import label_value
from kubemigrate.models import API_VERSION, GROUP
from kubemigrate.models.migration import MigrationSpec, MigrationStatus, RollbackStrategy


def _owner(obj: Mapping[str, Any]) -> Owner:
    meta = obj["metadata"]
    return Owner(
        "Migration", meta["name"], meta["namespace"], meta["uid"], int(meta.get("generation", 1))
    )


def backup_name(obj: Mapping[str, Any]) -> str:
    """``<migration>-pre-g<generation>``: one backup per applied generation."""
    return job_name(_owner(obj), "pre")


def restore_name(obj: Mapping[str, Any]) -> str:
    """``<migration>-restore-g<generation>``: one restore per rollback."""
    return job_name(_owner(obj), "restore")


def _child(obj: Mapping[str, Any], kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    owner = _owner(obj)
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "kubemigrate",
                f"{GROUP}/migration": label_value(owner.name),
            },
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
    }


def backup_manifest(obj: Mapping[str, Any], spec: MigrationSpec) -> dict[str, Any]:
    """The pre-migration DatabaseBackup (spec.backup.storage must be set)."""
    assert spec.backup is not None and spec.backup.storage is not None
    return _child(
        obj,
        "DatabaseBackup",
        backup_name(obj),
        {
            "database": spec.database.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "storage": spec.backup.storage.model_dump(
                by_alias=True, exclude_none=True, mode="json"
            ),
        },
    )


def restore_manifest(obj: Mapping[str, Any], spec: MigrationSpec, backup: str) -> dict[str, Any]:
    """A clean restore of the pre-migration backup into the migration's database."""
    return _child(
        obj,
        "DatabaseRestore",
        restore_name(obj),
        {
            "backupRef": {"name": backup},
            "clean": True,
            "database": spec.database.model_dump(by_alias=True, exclude_none=True, mode="json"),
        },
    )


def rollback_available(spec: MigrationSpec, has_down_sql: bool, current: MigrationStatus) -> bool:
    """rollbackSql for strategy sql; a recorded pre-migration backup for strategy restore."""
    if spec.rollback_strategy is RollbackStrategy.RESTORE:
        return current.backup_ref is not None and bool(current.backup_ref.name)
    return has_down_sql


def lost_writes_note(backup: str, taken_at: str) -> str:
    return (
        f"restored backup {backup} taken at {taken_at}; writes after {taken_at} are lost "
        "(the migration history is back to its state at that time too)"
    )
