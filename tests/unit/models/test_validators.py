"""Outside a cluster the models refuse what the CRDs' CEL rules refuse, with the same words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from kubemigrate.models.backup import DatabaseBackup
from kubemigrate.models.migration import Migration

Load = Callable[[str], dict[str, Any]]


def spec_with(manifest: Load, **changes: Any) -> dict[str, Any]:
    data = manifest("migration-minimal")
    data["spec"].update(changes)
    data["spec"] = {k: v for k, v in data["spec"].items() if v is not None}
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sqlFrom": None}, "exactly one of spec.sql and spec.sqlFrom must be set"),
        ({"sql": "SELECT 1"}, "exactly one of spec.sql and spec.sqlFrom must be set"),
        (
            {"rollbackSql": "x", "rollbackSqlFrom": {"configMapKeyRef": {"name": "a", "key": "b"}}},
            "at most one of spec.rollbackSql and spec.rollbackSqlFrom may be set",
        ),
        ({"rollbackStrategy": "restore"}, "rollbackStrategy: restore needs spec.backup enabled"),
        (
            {"rollbackStrategy": "restore", "backup": {"enabled": False}},
            "rollbackStrategy: restore needs spec.backup enabled",
        ),
        ({"dryRun": True, "transactional": False}, "dryRun needs transactional: true"),
        ({"sqlFrom": None, "sql": " \n"}, "spec.sql must contain SQL, not only whitespace"),
        ({"version": "v1"}, "String should match pattern"),
        ({"version": "1" * 65}, "at most 64 characters"),
        ({"timeouts": {"lock": "5"}}, "String should match pattern"),
        ({"timeouts": {"lock": "99999999h"}}, "timeouts.lock must be at most 1h"),
        ({"timeouts": {"lock": "59m61s"}}, "timeouts.lock must be at most 1h"),
        ({"timeouts": {"statement": "1441m"}}, "timeouts.statement must be at most 24h"),
        ({"historySchema": "Bad-Name"}, "String should match pattern"),
        ({"rollbackStrategy": "snapshot"}, "Input should be 'sql' or 'restore'"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_migration_refusals(manifest: Load, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        Migration.model_validate(spec_with(manifest, **changes))


def test_self_dependency_is_refused(manifest: Load) -> None:
    data = spec_with(manifest, dependsOn=["m001"])
    with pytest.raises(ValidationError, match="a Migration cannot depend on itself"):
        Migration.model_validate(data)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({}, "storage needs exactly one of: persistentVolumeClaim"),
        ({"persistentVolumeClaim": {"claimName": "Bad_Name"}}, "String should match pattern"),
        ({"persistentVolumeClaim": {"claimName": "b", "path": "/abs"}}, "should match pattern"),
    ],
)
def test_backup_storage_refusals(manifest: Load, storage: dict[str, Any], message: str) -> None:
    data = manifest("backup")
    data["spec"]["storage"] = storage
    with pytest.raises(ValidationError, match=message):
        DatabaseBackup.model_validate(data)


def test_backup_ttl_is_bounded(manifest: Load) -> None:
    data = manifest("backup")
    data["spec"]["retention"] = {"ttl": "87601h"}
    with pytest.raises(ValidationError, match=r"retention\.ttl must be at most 87600h"):
        DatabaseBackup.model_validate(data)
    data["spec"]["retention"] = {"ttl": "87600h"}
    DatabaseBackup.model_validate(data)
