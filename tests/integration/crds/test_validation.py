"""The generated CRDs on a real API server: what they refuse, with what message, what they keep.

Every refusal asserts the message `kubectl apply` prints, since that is what users read.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.kube import Kubectl
from kubemigrate.models.backup import DatabaseBackup
from kubemigrate.models.common import Condition, ConditionStatus, LastError, Verification
from kubemigrate.models.migration import (
    SQL_MAX_LENGTH,
    DryRunResult,
    Migration,
    MigrationPhase,
    MigrationStatus,
    PreflightCheck,
)
from kubemigrate.models.restore import DatabaseRestore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]

API = "kubemigrate.dev/v1alpha1"
IMMUTABLE = "cannot change once the migration is applied (status.checksum is set)"


def migration(name: str = "m001", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "database": {"secretRef": {"name": "db"}},
        "version": "001",
        "sql": "CREATE TABLE t (id int);",
    }
    base.update(spec)
    return {"apiVersion": API, "kind": "Migration", "metadata": {"name": name}, "spec": base}


def backup(name: str = "b1", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "database": {"secretRef": {"name": "db"}},
        "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
    }
    base.update(spec)
    return {"apiVersion": API, "kind": "DatabaseBackup", "metadata": {"name": name}, "spec": base}


def restore(name: str = "r1", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"backupRef": {"name": "b1"}}
    base.update(spec)
    return {"apiVersion": API, "kind": "DatabaseRestore", "metadata": {"name": name}, "spec": base}


def without(obj: dict[str, Any], field: str) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    del obj["spec"][field]
    return obj


def accepted(kubectl: Kubectl, namespace: str, obj: dict[str, Any]) -> None:
    kubectl.apply(json.dumps(obj), "-n", namespace)


def refused(kubectl: Kubectl, namespace: str, obj: dict[str, Any]) -> str:
    """Apply obj, assert the API server refused it, and return kubectl's error output."""
    proc = kubectl.apply(json.dumps(obj), "-n", namespace, check=False)
    assert proc.returncode != 0, f"accepted, but should have been refused:\n{proc.stdout}"
    return proc.stderr


def patch_status(kubectl: Kubectl, namespace: str, resource: str, status: dict[str, Any]) -> None:
    kubectl.run(
        "patch", resource, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def mark_applied(kubectl: Kubectl, namespace: str, name: str = "m001") -> None:
    patch_status(
        kubectl, namespace, f"migration/{name}",
        {"checksum": "sha256:" + "ab" * 32, "phase": "Succeeded"},
    )  # fmt: skip


# --- the CRDs themselves ---------------------------------------------------------------------


def test_crds_are_served_with_their_short_names_and_category(
    crds: list[str], kubectl: Kubectl, namespace: str
) -> None:
    assert sorted(crds) == [
        "databasebackups.kubemigrate.dev",
        "databasebackupschedules.kubemigrate.dev",
        "databaserestores.kubemigrate.dev",
        "migrations.kubemigrate.dev",
        "migrationsets.kubemigrate.dev",
    ]
    for short in ("mig", "dbbackup", "dbrestore", "dbbackupschedule", "migset"):
        kubectl.run("get", short, "-n", namespace)
    accepted(kubectl, namespace, migration())
    accepted(kubectl, namespace, backup())
    out = kubectl.run("get", "kubemigrate", "-n", namespace).stdout
    assert "migration.kubemigrate.dev/m001" in out
    assert "databasebackup.kubemigrate.dev/b1" in out


def test_kubectl_explain_shows_the_field_descriptions(kubectl: Kubectl) -> None:
    out = kubectl.run("explain", "migration.spec.rollback").stdout
    assert "Set true to revert the migration" in out
    out = kubectl.run("explain", "dbbackup.spec.verify.restore").stdout
    assert "scratch database" in out


# --- Migration: refused at create ------------------------------------------------------------


def test_missing_sql_is_refused(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, without(migration(), "sql"))
    assert "spec: Invalid value: exactly one of spec.sql and spec.sqlFrom must be set" in err


def test_sql_and_sql_from_together_are_refused(kubectl: Kubectl, namespace: str) -> None:
    obj = migration(sqlFrom={"configMapKeyRef": {"name": "scripts", "key": "001.sql"}})
    assert "exactly one of spec.sql and spec.sqlFrom must be set" in refused(
        kubectl, namespace, obj
    )


def test_sql_from_alone_is_accepted(kubectl: Kubectl, namespace: str) -> None:
    obj = without(migration(), "sql")
    obj["spec"]["sqlFrom"] = {"configMapKeyRef": {"name": "scripts", "key": "001.sql"}}
    accepted(kubectl, namespace, obj)


@pytest.mark.parametrize("sql", ["", "  \n\t "])
def test_empty_sql_is_refused(kubectl: Kubectl, namespace: str, sql: str) -> None:
    err = refused(kubectl, namespace, migration(sql=sql))
    if sql:
        assert "spec.sql: Invalid value: " in err
        assert "must contain SQL, not only whitespace" in err
    else:
        assert "spec.sql in body should be at least 1 chars long" in err


@pytest.mark.parametrize("version", ["v1", "1.", "1..2", "1-2", "9" * 65])
def test_bad_version_is_refused(kubectl: Kubectl, namespace: str, version: str) -> None:
    err = refused(kubectl, namespace, migration(version=version))
    if len(version) > 64:
        assert "spec.version: Too long: may not be more than 64" in err
    else:
        assert "version must be digits separated by '.' or '_', e.g. '001'" in err
        assert "spec.version in body should match '^[0-9]+([._][0-9]+)*$'" in err


def test_missing_database_and_version_are_refused(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, without(without(migration(), "database"), "version"))
    assert "spec.database: Required value" in err
    assert "spec.version: Required value" in err


def test_unknown_field_is_refused(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, migration(rollbackSQL="DROP TABLE t;"))
    assert 'unknown field "spec.rollbackSQL"' in err


def test_restore_strategy_needs_a_backup(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, migration(rollbackStrategy="restore"))
    assert (
        "spec.rollbackStrategy: Invalid value: rollbackStrategy: restore needs spec.backup enabled"
        in err
    )
    err = refused(
        kubectl, namespace, migration(rollbackStrategy="restore", backup={"enabled": False})
    )
    assert "rollbackStrategy: restore needs spec.backup enabled" in err
    accepted(kubectl, namespace, migration(rollbackStrategy="restore", backup={}))


def test_unknown_rollback_strategy_is_refused(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, migration(rollbackStrategy="snapshot"))
    assert 'spec.rollbackStrategy: Unsupported value: "snapshot"' in err


def test_dry_run_needs_a_transaction(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, migration(dryRun=True, transactional=False))
    assert "spec.dryRun: Invalid value: dryRun needs transactional: true" in err


def test_a_migration_cannot_depend_on_itself(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, migration(dependsOn=["m000", "m001"]))
    assert "spec.dependsOn: Invalid value: a Migration cannot depend on itself" in err
    err = refused(kubectl, namespace, migration(dependsOn=["m000", "m000"]))
    assert 'spec.dependsOn[1]: Duplicate value: "m000"' in err


def test_bad_timeouts_are_refused(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, migration(timeouts={"lock": "5", "statement": "1d"}))
    assert "spec.timeouts.lock in body should match" in err
    assert "spec.timeouts.statement in body should match" in err
    accepted(kubectl, namespace, migration(timeouts={"lock": "1.5s", "statement": "1h30m"}))


@pytest.mark.parametrize(
    ("timeouts", "message"),
    [
        ({"lock": "99999999h"}, "spec.timeouts.lock: Invalid value: "),
        ({"lock": "61m"}, "timeouts.lock must be at most 1h"),
        ({"lock": "1h0.5s"}, "timeouts.lock must be at most 1h"),
        ({"statement": "24h1s"}, "timeouts.statement must be at most 24h"),
        ({"statement": "99999999h"}, "spec.timeouts.statement: Invalid value: "),
    ],
)
def test_timeouts_are_bounded(
    kubectl: Kubectl, namespace: str, timeouts: dict[str, str], message: str
) -> None:
    """A duration PostgreSQL would refuse at apply (22023) is refused at the API."""
    err = refused(kubectl, namespace, migration(timeouts=timeouts))
    assert message in err
    field = next(iter(timeouts))
    assert f"timeouts.{field} must be at most" in err
    Migration.model_validate(migration(timeouts={"lock": "1h", "statement": "24h"}))


def test_the_longest_timeouts_are_accepted(kubectl: Kubectl, namespace: str) -> None:
    accepted(kubectl, namespace, migration(timeouts={"lock": "1h", "statement": "23h60m"}))
    accepted(kubectl, namespace, migration(timeouts={"lock": "500ms", "statement": "86400s"}))


def test_a_backup_ttl_is_bounded(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, backup(retention={"ttl": "99999999999h"}))
    assert "retention.ttl must be at most 87600h" in err
    accepted(kubectl, namespace, backup(retention={"ttl": "87600h"}))


# --- Migration: immutable once applied -------------------------------------------------------


def test_sql_may_change_until_the_migration_is_applied(kubectl: Kubectl, namespace: str) -> None:
    accepted(kubectl, namespace, migration())
    accepted(kubectl, namespace, migration(sql="CREATE TABLE t2 (id int);", version="002"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sql": "CREATE TABLE other (id int);"}, f"spec.sql: Invalid value: spec.sql {IMMUTABLE}"),
        ({"version": "002"}, f"spec.version: Invalid value: spec.version {IMMUTABLE}"),
        (
            {"rollbackSql": "DROP TABLE other;"},
            "spec.rollbackSql: Invalid value: spec.rollbackSql cannot change or be removed once "
            "the migration is applied",
        ),
        ({"rollbackSql": None}, "spec.rollbackSql cannot change or be removed"),
        (
            {"sql": None, "sqlFrom": {"configMapKeyRef": {"name": "s", "key": "k"}}},
            f"spec.sql {IMMUTABLE}",
        ),
        (
            {"database": {"secretRef": {"name": "other-db"}}},
            f"spec.database: Invalid value: spec.database {IMMUTABLE}",
        ),
        (
            {"database": {"secretRef": {"name": "db", "key": "dsn"}}},
            f"spec.database {IMMUTABLE}",
        ),
        (
            {"historySchema": "elsewhere"},
            f"spec.historySchema: Invalid value: spec.historySchema {IMMUTABLE}",
        ),
    ],
)
def test_applied_migration_refuses_changes(
    kubectl: Kubectl, namespace: str, change: dict[str, Any], message: str
) -> None:
    accepted(kubectl, namespace, migration(rollbackSql="DROP TABLE t;"))
    mark_applied(kubectl, namespace)
    changed = migration(**{"rollbackSql": "DROP TABLE t;", **change})
    changed["spec"] = {k: v for k, v in changed["spec"].items() if v is not None}
    err = refused(kubectl, namespace, changed)
    assert message in err
    assert "create a new Migration with a higher version instead" in err


def test_applied_migration_refuses_a_patch_too(kubectl: Kubectl, namespace: str) -> None:
    accepted(kubectl, namespace, migration())
    mark_applied(kubectl, namespace)
    proc = kubectl.run(
        "patch", "migration/m001", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"sql": "SELECT 1"}}', check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"spec.sql {IMMUTABLE}" in proc.stderr


def test_database_and_history_schema_may_change_until_applied_and_after_a_rollback(
    kubectl: Kubectl, namespace: str
) -> None:
    accepted(kubectl, namespace, migration())
    accepted(kubectl, namespace, migration(database={"secretRef": {"name": "db2"}}))
    accepted(kubectl, namespace, migration(historySchema="other"))
    mark_applied(kubectl, namespace)
    refused(kubectl, namespace, migration(historySchema="third"))
    # Rolled back, status.checksum is removed: the migration may be pointed elsewhere.
    patch_status(kubectl, namespace, "migration/m001", {"checksum": None, "phase": "RolledBack"})
    accepted(kubectl, namespace, migration(historySchema="third", rollback=True))


def test_applied_migration_can_still_be_rolled_back(kubectl: Kubectl, namespace: str) -> None:
    accepted(kubectl, namespace, migration())
    mark_applied(kubectl, namespace)
    # A rollback script may be added later, and rollback toggled, without touching the SQL.
    accepted(kubectl, namespace, migration(rollbackSql="DROP TABLE t;"))
    accepted(kubectl, namespace, migration(rollbackSql="DROP TABLE t;", rollback=True))
    got = kubectl.json("get", "migration/m001", "-n", namespace)
    assert got["spec"]["rollback"] is True


def test_a_1_mib_script_fits_the_cel_cost_budget(kubectl: Kubectl, namespace: str) -> None:
    """The CEL rules over sql (trim, and equality once applied) run within the runtime budget."""
    sql = ("INSERT INTO t VALUES (1);\n" * 41000)[: SQL_MAX_LENGTH - 1] + "\n"
    obj = migration(sql=sql)
    kubectl.run("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(obj))
    mark_applied(kubectl, namespace)
    obj["spec"]["rollback"] = True
    kubectl.run("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(obj))
    obj["spec"]["sql"] = sql[:-1] + " "
    proc = kubectl.run(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False
    )
    assert proc.returncode != 0
    assert f"spec.sql {IMMUTABLE}" in proc.stderr
    obj["spec"]["sql"] = sql + "x"
    proc = kubectl.run(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False
    )
    assert "spec.sql: Too long: may not be more than 1048576 bytes" in proc.stderr


def test_status_cannot_be_written_through_the_main_resource(
    kubectl: Kubectl, namespace: str
) -> None:
    obj = migration()
    obj["status"] = {"checksum": "sha256:" + "00" * 32}
    accepted(kubectl, namespace, obj)
    assert "status" not in kubectl.json("get", "migration/m001", "-n", namespace)
    accepted(kubectl, namespace, migration(sql="SELECT 2"))  # so not frozen either


# --- Migration: accepted, defaulted, printed, round-tripped ----------------------------------


def test_valid_migration_gets_the_models_defaults(kubectl: Kubectl, namespace: str) -> None:
    manifest = migration(description="first", rollbackSql="DROP TABLE t;", backup={})
    accepted(kubectl, namespace, manifest)
    got = kubectl.json("get", "migration/m001", "-n", namespace)
    spec = got["spec"]
    assert spec["database"]["secretRef"] == {"name": "db", "key": "url"}
    assert spec["rollback"] is False
    assert spec["rollbackStrategy"] == "sql"
    assert spec["transactional"] is True
    assert spec["dryRun"] is False
    assert spec["preflight"] == {"enabled": True, "dryRun": False}
    assert spec["historySchema"] == "kubemigrate"
    assert spec["backup"] == {"enabled": True}
    # The API server's defaults are the models' defaults.
    assert Migration.model_validate(got).spec == Migration.model_validate(manifest).spec


def test_printer_columns(kubectl: Kubectl, namespace: str) -> None:
    accepted(kubectl, namespace, migration())
    patch_status(
        kubectl, namespace, "migration/m001",
        {"phase": "Succeeded", "durationSeconds": 1.25, "rollbackAvailable": True,
         "reason": "Applied", "checksum": "sha256:" + "ab" * 32},
    )  # fmt: skip
    header, row = kubectl.run("get", "mig", "-n", namespace).stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "PHASE", "DURATION", "ROLLBACK", "AGE"]
    assert row.split()[:5] == ["m001", "001", "Succeeded", "1.25", "true"]
    header, row = kubectl.run("get", "mig", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert header.split()[-1] == "REASON"
    assert row.split()[-1] == "Applied"


def test_every_status_field_survives_the_api_server(kubectl: Kubectl, namespace: str) -> None:
    """A status written from the model is stored whole: nothing is pruned or reshaped."""
    accepted(kubectl, namespace, migration())
    t0 = datetime(2024, 12, 20, 10, 0, 0, tzinfo=UTC)
    status = MigrationStatus(
        phase=MigrationPhase.FAILED,
        reason="LockTimeout",
        message="could not take the lock",
        conditions=[
            Condition(
                type="Ready", status=ConditionStatus.FALSE, reason="Failed", message="m",
                last_transition_time=t0, observed_generation=1,
            ),
            Condition(type="Stalled", status=ConditionStatus.TRUE, last_transition_time=t0),
        ],
        observed_generation=1, started_at=t0, completed_at=t0, duration_seconds=0.5,
        checksum="sha256:" + "ab" * 32, rollback_available=False, schema_version="000",
        backup_ref={"name": "m001-pre"}, rows_affected=3, tables_created=["public.t"],
        tables_altered=["public.u"], tables_dropped=["public.v"],
        last_error=LastError(
            sqlstate="55P03", message="canceling statement due to lock timeout",
            statement="ALTER TABLE u ADD c int", line=2, position=1, detail="d", hint="h",
        ),
        preflight=[PreflightCheck(name="connectivity", passed=True, message="ok")],
        preflight_job="m001-preflight-1", waiting_for="lock", run_id="42", attempts=2,
        dry_run=DryRunResult(completed_at=t0, checksum="sha256:x", statements=2, rows_affected=1,
                             tables_created=["public.t"]),
    )  # fmt: skip
    patch_status(
        kubectl, namespace, "migration/m001", status.model_dump(mode="json", by_alias=True)
    )
    got = Migration.model_validate(kubectl.json("get", "migration/m001", "-n", namespace))
    assert got.status == status


# --- DatabaseBackup --------------------------------------------------------------------------


def test_backup_without_storage_is_refused(kubectl: Kubectl, namespace: str) -> None:
    assert "spec.storage: Required value" in refused(
        kubectl, namespace, without(backup(), "storage")
    )
    err = refused(kubectl, namespace, backup(storage={}))
    assert "spec.storage: Invalid value: storage needs exactly one of: persistentVolumeClaim" in err


def test_backup_with_unknown_format_is_refused(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, backup(format="tar"))
    assert 'spec.format: Unsupported value: "tar": supported values: "custom", "plain"' in err


def test_backup_path_may_not_escape_the_volume(kubectl: Kubectl, namespace: str) -> None:
    pvc = {"claimName": "backups", "path": "prod/../../etc"}
    err = refused(kubectl, namespace, backup(storage={"persistentVolumeClaim": pvc}))
    assert "path must not contain '.' or '..' segments" in err
    pvc = {"claimName": "backups", "path": "/abs"}
    err = refused(kubectl, namespace, backup(storage={"persistentVolumeClaim": pvc}))
    assert "spec.storage.persistentVolumeClaim.path in body should match" in err


def test_backup_source_and_target_are_immutable(kubectl: Kubectl, namespace: str) -> None:
    accepted(kubectl, namespace, backup())
    err = refused(kubectl, namespace, backup(database={"secretRef": {"name": "other"}}))
    assert "spec.database cannot change; create a new DatabaseBackup instead" in err
    err = refused(kubectl, namespace, backup(format="plain"))
    assert "spec.format cannot change" in err
    accepted(kubectl, namespace, backup(retention={"keepLast": 3, "ttl": "168h"}))


def test_valid_backup_defaults_and_columns(kubectl: Kubectl, namespace: str) -> None:
    manifest = backup()
    accepted(kubectl, namespace, manifest)
    got = kubectl.json("get", "dbbackup/b1", "-n", namespace)
    assert got["spec"]["format"] == "custom"
    assert got["spec"]["verify"] == {"restore": False}
    assert got["spec"]["activeDeadlineSeconds"] == 3600
    assert DatabaseBackup.model_validate(got).spec == DatabaseBackup.model_validate(manifest).spec
    patch_status(
        kubectl, namespace, "dbbackup/b1",
        {"phase": "Succeeded", "sizeBytes": 123456, "durationSeconds": 2.5, "verified": True,
         "verification": Verification(tables=2, rows=10, matched=True).model_dump(by_alias=True)},
    )  # fmt: skip
    header, row = kubectl.run("get", "dbbackup", "-n", namespace).stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "SIZE", "DURATION", "VERIFIED", "AGE"]
    assert row.split()[:5] == ["b1", "Succeeded", "123456", "2.5", "true"]


# --- DatabaseRestore -------------------------------------------------------------------------


def test_restore_needs_a_backup_ref_or_a_source(kubectl: Kubectl, namespace: str) -> None:
    err = refused(kubectl, namespace, without(restore(), "backupRef"))
    assert "a DatabaseRestore needs exactly one of backupRef and source" in err
    source = {"objectStore": {"bucket": "backups", "key": "shop/x.dump"}}
    err = refused(kubectl, namespace, restore(source=source))
    assert "a DatabaseRestore needs exactly one of backupRef and source" in err
    err = refused(kubectl, namespace, without(restore(source=source), "backupRef"))
    assert "a restore from source needs database" in err
    accepted(
        kubectl,
        namespace,
        without(restore(source=source, database={"secretRef": {"name": "db"}}), "backupRef"),
    )


def test_object_storage_fields_are_checked(kubectl: Kubectl, namespace: str) -> None:
    both = {"persistentVolumeClaim": {"claimName": "c"}, "objectStore": {"bucket": "backups"}}
    err = refused(kubectl, namespace, backup(storage=both))
    assert "storage needs exactly one of: persistentVolumeClaim, objectStore" in err
    err = refused(kubectl, namespace, backup(storage={"objectStore": {"bucket": "Bad_Bucket"}}))
    assert "spec.storage.objectStore.bucket" in err
    err = refused(
        kubectl, namespace, backup(storage={"objectStore": {"bucket": "bkt", "prefix": "a/../b"}})
    )
    assert "prefix must not contain" in err
    err = refused(kubectl, namespace, backup(jobs=2))
    assert "jobs > 1 needs format: directory" in err
    err = refused(kubectl, namespace, backup(compress="brotli"))
    assert "spec.compress" in err
    accepted(
        kubectl,
        namespace,
        backup(
            storage={
                "objectStore": {
                    "bucket": "backups",
                    "prefix": "prod",
                    "endpoint": "http://127.0.0.1:9000",
                    "forcePathStyle": True,
                    "secretRef": {"name": "s3"},
                }
            },
            format="directory",
            jobs=2,
            compress="zstd:3",
        ),
    )


def test_restore_spec_is_immutable(kubectl: Kubectl, namespace: str) -> None:
    accepted(kubectl, namespace, restore())
    err = refused(kubectl, namespace, restore(clean=True))
    assert "a DatabaseRestore's spec cannot change; create a new DatabaseRestore instead" in err


def test_valid_restore_defaults_and_columns(kubectl: Kubectl, namespace: str) -> None:
    manifest = restore(database={"secretRef": {"name": "scratch", "key": "dsn"}})
    accepted(kubectl, namespace, manifest)
    got = kubectl.json("get", "dbrestore/r1", "-n", namespace)
    assert got["spec"]["clean"] is False
    assert got["spec"]["activeDeadlineSeconds"] == 3600
    assert DatabaseRestore.model_validate(got).spec == DatabaseRestore.model_validate(manifest).spec
    patch_status(kubectl, namespace, "dbrestore/r1", {"phase": "Running"})
    header, row = kubectl.run("get", "dbrestore", "-n", namespace).stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "BACKUP", "DURATION", "AGE"]
    assert row.split()[:3] == ["r1", "Running", "b1"]
