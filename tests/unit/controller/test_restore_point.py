"""The pre-migration DatabaseBackup and the rollback's DatabaseRestore a Migration creates."""

from __future__ import annotations

from kubemigrate.controller.build.restore_point import (
    backup_manifest,
    backup_name,
    lost_writes_note,
    restore_manifest,
    restore_name,
    rollback_available,
)
from kubemigrate.models.migration import MigrationSpec, MigrationStatus

OBJ = {"metadata": {"name": "m1", "namespace": "shop", "uid": "uid-m1", "generation": 3}}
SPEC = MigrationSpec.model_validate(
    {
        "database": {"secretRef": {"name": "db", "key": "dsn"}},
        "version": "1",
        "sql": "SELECT 1",
        "rollbackStrategy": "restore",
        "backup": {"storage": {"persistentVolumeClaim": {"claimName": "backups"}}},
    }
)


def test_names_per_generation() -> None:
    assert backup_name(OBJ) == "m1-pre-g3"
    assert restore_name(OBJ) == "m1-restore-g3"


def test_backup_is_owned_by_the_migration() -> None:
    manifest = backup_manifest(OBJ, SPEC)
    assert manifest["kind"] == "DatabaseBackup"
    assert manifest["metadata"]["name"] == "m1-pre-g3"
    assert manifest["metadata"]["namespace"] == "shop"
    owner = manifest["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Migration", "uid-m1", True)
    assert manifest["spec"] == {
        "database": {"secretRef": {"name": "db", "key": "dsn"}},
        "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
    }


def test_restore_is_clean_into_the_migrations_database() -> None:
    manifest = restore_manifest(OBJ, SPEC, "m1-pre-g1")
    assert manifest["kind"] == "DatabaseRestore"
    assert manifest["spec"] == {
        "backupRef": {"name": "m1-pre-g1"},
        "clean": True,
        "database": {"secretRef": {"name": "db", "key": "dsn"}},
    }


def test_rollback_available() -> None:
    backed_up = MigrationStatus.model_validate({"backupRef": {"name": "m1-pre-g1"}})
    assert rollback_available(SPEC, False, backed_up) is True
    assert rollback_available(SPEC, True, MigrationStatus()) is False
    sql = SPEC.model_copy(update={"rollback_strategy": "sql"})
    assert rollback_available(sql, True, MigrationStatus()) is True
    assert rollback_available(sql, False, backed_up) is False


def test_the_note_says_writes_are_lost() -> None:
    note = lost_writes_note("m1-pre-g1", "2024-12-20T10:00:00Z")
    assert "restored backup m1-pre-g1 taken at 2024-12-20T10:00:00Z" in note
    assert "writes after 2024-12-20T10:00:00Z are lost" in note
