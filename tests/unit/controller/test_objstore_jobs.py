"""Backup, restore and cleanup Jobs for object storage: one key per backup, credentials only by
secretKeyRef (or none: workload identity), and the restore source's rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubemigrate.controller.build.backup_jobs import (
    ObjectPlace,
    backup_request,
    cleanup_request,
    object_place,
    parse_location,
    place_of,
    restore_request,
)
from kubemigrate.controller.build.jobs import Owner, build_job
from kubemigrate.models.backup import DatabaseBackupSpec
from kubemigrate.models.restore import DatabaseRestoreSpec
from kubemigrate.models.storage import BackupStorage
from kubemigrate.settings import Settings

STORE = {
    "bucket": "backups",
    "prefix": "prod",
    "endpoint": "http://127.0.0.1:9000",
    "region": "eu-west-1",
    "forcePathStyle": True,
    "secretRef": {"name": "s3", "sessionTokenKey": "token"},
}
SPEC = DatabaseBackupSpec.model_validate(
    {
        "database": {"secretRef": {"name": "db"}},
        "storage": {"objectStore": STORE},
        "format": "directory",
        "jobs": 4,
        "compress": "zstd:3",
    }
)
OWNER = Owner("DatabaseBackup", "nightly", "shop", "0123456789abcdef", 1)


def test_one_key_per_backup_under_the_prefix() -> None:
    place = place_of(SPEC, "shop", "nightly", "0123456789abcdef")
    assert isinstance(place, ObjectPlace)
    assert place.location == "s3://backups/prod/shop/nightly-01234567.tar"
    assert parse_location(place.location, SPEC.storage) == place
    assert parse_location("s3://other/prod/x.dump", SPEC.storage) is None
    assert parse_location(place.location, None) is None


def test_backup_job_gets_credentials_by_reference_only() -> None:
    place = place_of(SPEC, "shop", "nightly", "0123456789abcdef")
    job = build_job(OWNER, backup_request(SPEC, place), Settings())
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[:3] == ["backup", "--output", place.location]
    assert args[args.index("--jobs") + 1] == "4" and args[args.index("--compress") + 1] == "zstd:3"
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://127.0.0.1:9000"
    assert env["AWS_REGION"]["value"] == "eu-west-1"
    assert env["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"]["value"] == "false"
    refs = {
        name: env[name]["valueFrom"]["secretKeyRef"]
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "DATABASE_URL",
        )
    }
    assert refs["AWS_ACCESS_KEY_ID"] == {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}
    assert refs["AWS_SESSION_TOKEN"] == {"name": "s3", "key": "token"}
    assert [v["name"] for v in job["spec"]["template"]["spec"]["volumes"]] == ["tmp"]
    credentials = [
        e for e in container["env"] if e["name"].startswith("AWS_") and "KEY" in e["name"]
    ]
    assert credentials and all(set(e) == {"name", "valueFrom"} for e in credentials)


def test_workload_identity_means_no_credential_env() -> None:
    store = {k: v for k, v in STORE.items() if k not in ("secretRef", "endpoint")}
    spec = SPEC.model_copy(update={"storage": BackupStorage.model_validate({"objectStore": store})})
    place = place_of(spec, "shop", "nightly", "0123456789abcdef")
    for request in (backup_request(spec, place), cleanup_request(place)):
        names = {
            e["name"]
            for e in build_job(OWNER, request, Settings())["spec"]["template"]["spec"][
                "containers"
            ][0]["env"]
        }
        assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}


def test_restore_and_cleanup_of_an_object() -> None:
    place = object_place(SPEC.storage.object_store, "shop/old.dump")  # type: ignore[arg-type]
    assert place.location == "s3://backups/prod/shop/old.dump"
    args = restore_request(place, "db", "url", clean=False, deadline=60, jobs=2).args
    assert args == ["restore", place.location, "--json", "--jobs", "2"]
    cleanup = cleanup_request(place)
    assert cleanup.args == ["delete-backup", place.location, "--json"] and not cleanup.owned
    assert {e.name for e in cleanup.secret_env} == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    }


@pytest.mark.parametrize(
    "spec",
    [
        {"database": {"secretRef": {"name": "db"}}},  # neither
        {"backupRef": {"name": "b"}, "source": {"objectStore": {"bucket": "bkt", "key": "x"}}},
        {"source": {"objectStore": {"bucket": "bkt", "key": "x.dump"}}},  # no database
    ],
)
def test_a_restore_needs_exactly_one_source(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DatabaseRestoreSpec.model_validate(spec)


def test_storage_needs_exactly_one_kind() -> None:
    with pytest.raises(ValidationError):
        BackupStorage.model_validate({})
    with pytest.raises(ValidationError):
        BackupStorage.model_validate(
            {"persistentVolumeClaim": {"claimName": "c"}, "objectStore": {"bucket": "bkt"}}
        )
