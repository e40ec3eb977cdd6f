"""The models read the YAML users write and write back the same YAML, camelCase."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from kubemigrate.models.backup import BackupFormat, DatabaseBackup
from kubemigrate.models.base import API_VERSION
from kubemigrate.models.migration import (
    Migration,
    MigrationPhase,
    MigrationStatus,
    RollbackStrategy,
)
from kubemigrate.models.restore import DatabaseRestore

Load = Callable[[str], dict[str, Any]]


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("migration-full", Migration),
        ("migration-minimal", Migration),
        ("backup", DatabaseBackup),
        ("restore", DatabaseRestore),
    ],
)
def test_round_trip(manifest: Load, name: str, model: type[BaseModel]) -> None:
    data = manifest(name)
    parsed = model.model_validate(data)
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped == data
    assert model.model_validate(dumped) == parsed


def test_fields_are_snake_case_in_python(manifest: Load) -> None:
    m = Migration.model_validate(manifest("migration-full"))
    assert m.spec.database.secret_ref.key == "dsn"
    assert m.spec.rollback_strategy is RollbackStrategy.RESTORE
    assert m.spec.depends_on == ["orders-001-initial"]
    assert m.spec.backup is not None and m.spec.backup.storage is not None
    pvc = m.spec.backup.storage.persistent_volume_claim
    assert pvc is not None and pvc.claim_name == "backups"
    assert m.spec.preflight.dry_run is True
    assert m.status is not None
    assert m.status.phase is MigrationPhase.SUCCEEDED
    assert m.status.started_at == datetime(2024, 12, 20, 10, 0, tzinfo=UTC)
    assert m.status.conditions[0].last_transition_time.tzinfo is not None
    assert m.metadata.labels == {"app": "orders"}


def test_snake_case_names_are_accepted_too() -> None:
    m = Migration.model_validate(
        {
            "spec": {
                "database": {"secret_ref": {"name": "db"}},
                "version": "1",
                "sql": "SELECT 1",
                "rollback_sql": "SELECT 2",
            }
        }
    )
    assert m.spec.rollback_sql == "SELECT 2"
    dumped = m.model_dump(by_alias=True, exclude_none=True)
    assert dumped["apiVersion"] == API_VERSION
    assert dumped["spec"]["rollbackSql"] == "SELECT 2"


def test_migration_defaults(manifest: Load) -> None:
    spec = Migration.model_validate(manifest("migration-minimal")).spec
    assert spec.database.secret_ref.key == "url"
    assert spec.rollback is False
    assert spec.rollback_strategy is RollbackStrategy.SQL
    assert spec.transactional is True
    assert spec.dry_run is False
    assert spec.preflight.enabled is True and spec.preflight.dry_run is False
    assert spec.history_schema == "kubemigrate"
    assert spec.allow_out_of_order is False
    assert spec.depends_on == []
    assert spec.backup is None and spec.backup_enabled is False


def test_backup_is_on_when_present_unless_disabled(manifest: Load) -> None:
    data = manifest("migration-minimal")
    data["spec"]["backup"] = {}
    assert Migration.model_validate(data).spec.backup_enabled is True
    data["spec"]["backup"] = {"enabled": False}
    assert Migration.model_validate(data).spec.backup_enabled is False


def test_backup_and_restore_defaults(manifest: Load) -> None:
    b = manifest("backup")
    for key in ("format", "verify", "retention", "activeDeadlineSeconds"):
        del b["spec"][key]
    spec = DatabaseBackup.model_validate(b).spec
    assert spec.format is BackupFormat.CUSTOM
    assert spec.verify.restore is False
    assert spec.active_deadline_seconds == 3600
    r = manifest("restore")
    del r["spec"]["database"], r["spec"]["clean"]
    rspec = DatabaseRestore.model_validate(r).spec
    assert rspec.database is None and rspec.clean is False and rspec.active_deadline_seconds == 3600


def test_durations_are_kept_to_milliseconds() -> None:
    assert MigrationStatus(duration_seconds=1.23456).duration_seconds == 1.235


def test_status_ignores_fields_it_does_not_know() -> None:
    status = MigrationStatus.model_validate({"phase": "Pending", "newerField": 1})
    assert status.phase is MigrationPhase.PENDING


def test_the_model_literal_is_the_api_version() -> None:
    for model in (Migration, DatabaseBackup, DatabaseRestore):
        assert model.model_fields["api_version"].default == API_VERSION
