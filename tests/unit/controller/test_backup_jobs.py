"""Backup, restore and cleanup Jobs: one path per backup, the URL only from the Secret, results
(read by kubemigrate.jobresult) as status fields, and no backup recorded when the run failed."""

from __future__ import annotations

import json

from kubemigrate.controller.build.backup_jobs import (
    Place,
    backup_fields,
    backup_request,
    cleanup_owner,
    cleanup_request,
    parse_location,
    place_of,
    restore_fields,
    restore_request,
)
from kubemigrate.controller.build.jobs import Owner, build_job
from kubemigrate.jobresult import read_outcome
from kubemigrate.models.backup import DatabaseBackupSpec
from kubemigrate.settings import Settings

SPEC = DatabaseBackupSpec.model_validate(
    {
        "database": {"secretRef": {"name": "db"}},
        "storage": {"persistentVolumeClaim": {"claimName": "backups", "path": "prod/orders"}},
    }
)


def test_one_path_per_backup_under_the_claim() -> None:
    place = place_of(SPEC, "shop", "nightly", "0123456789abcdef")
    assert place == Place("backups", "prod/orders/shop/nightly-01234567.dump")
    assert place.location == "pvc://backups/prod/orders/shop/nightly-01234567.dump"
    assert place.in_pod == "/backups/prod/orders/shop/nightly-01234567.dump"
    assert parse_location(place.location) == place
    plain = SPEC.model_copy(
        update={
            "format": "plain",
            "storage": SPEC.storage.model_copy(
                update={
                    "persistent_volume_claim": SPEC.storage.persistent_volume_claim.model_copy(
                        update={"path": None}
                    )
                }
            ),
        }
    )
    assert place_of(plain, "shop", "x", "abcdefgh1234").path == "shop/x-abcdefgh.sql"
    assert parse_location("s3://bucket/x") is None
    assert parse_location(None) is None


def test_backup_job_verifies_and_mounts_the_claim() -> None:
    place = place_of(SPEC, "shop", "nightly", "0123456789abcdef")
    request = backup_request(SPEC, place)
    assert request.args[:3] == ["backup", "--output", place.in_pod]
    assert "--verify" in request.args and "--test-restore" not in request.args
    assert request.active_deadline_seconds == 3600
    job = build_job(
        Owner("DatabaseBackup", "nightly", "shop", "uid", 1), request, Settings(image="img:1")
    )
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "backups"}} in pod["volumes"]
    container = pod["containers"][0]
    assert {"name": "backups", "mountPath": "/backups", "readOnly": False} in container[
        "volumeMounts"
    ]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "url"}
    verified = SPEC.model_copy(
        update={
            "verify": SPEC.verify.model_copy(update={"restore": True}),
            "active_deadline_seconds": 5,
        }
    )
    request = backup_request(verified, place)
    assert "--test-restore" in request.args and request.active_deadline_seconds == 5


def test_restore_and_cleanup_jobs() -> None:
    place = Place("backups", "shop/nightly-01234567.dump")
    request = restore_request(place, "other", "dsn", clean=True, deadline=60)
    assert request.args == ["restore", place.in_pod, "--json", "--clean"]
    assert request.volumes[0]["persistentVolumeClaim"]["readOnly"] is True
    assert (request.secret_name, request.secret_key) == ("other", "dsn")
    assert "--clean" not in restore_request(place, "db", "url", clean=False, deadline=1).args
    owner = cleanup_owner("nightly", "shop", "0123456789abcdef")
    job = build_job(owner, cleanup_request(place), Settings())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["delete-backup", place.in_pod]
    assert container["env"] == []  # never connects, so needs no Secret
    assert job["metadata"]["ownerReferences"] == []  # outlives the backup being deleted
    assert job["metadata"]["name"] == "nightly-01234567-cleanup-g0"


def test_a_finished_backup_becomes_status_fields() -> None:
    place = Place("backups", "shop/n-1.dump")
    message = json.dumps(
        {
            "ok": True,
            "sizeBytes": 10,
            "sha256": "ab" * 32,
            "serverVersion": "15.18",
            "verified": True,
            "verification": {"tables": 2, "rows": 7, "matched": True, "mismatches": []},
        }
    )
    outcome = read_outcome(message, None)
    assert outcome.ok
    assert backup_fields(outcome, place) == {
        "serverVersion": "15.18",
        "verified": True,
        "location": place.location,
        "sha256": "ab" * 32,
        "sizeBytes": 10,
        "verification": {"tables": 2, "rows": 7, "matched": True, "mismatches": []},
    }


def test_a_failed_backup_records_no_location() -> None:
    message = json.dumps(
        {
            "ok": False,
            "reason": "ConnectionFailed",
            "error": "cannot connect to postgresql://u:***@h/db: password authentication failed",
        }
    )
    outcome = read_outcome(message, "BackoffLimitExceeded: Job has reached the backoff limit")
    assert not outcome.ok and outcome.reason == "ConnectionFailed"
    assert "password authentication failed" in outcome.message
    fields = backup_fields(outcome, Place("backups", "x.dump"))
    assert fields["location"] is None and fields["sha256"] is None
    assert fields["verified"] is False and "sizeBytes" not in fields


def test_restore_verification_fields() -> None:
    outcome = read_outcome(
        json.dumps(
            {
                "ok": False,
                "reason": "RowCountMismatch",
                "tables": 2,
                "rows": 5,
                "matched": False,
                "mismatches": [{"table": "public.a", "expectedRows": 3, "actualRows": 1}],
            }
        ),
        None,
    )
    assert restore_fields(outcome) == {
        "verification": {
            "tables": 2,
            "rows": 5,
            "matched": False,
            "mismatches": [{"table": "public.a", "expectedRows": 3, "actualRows": 1}],
        }
    }
    refused = read_outcome(
        json.dumps({"ok": False, "reason": "TargetNotEmpty", "error": "database x is not empty"}),
        None,
    )
    assert restore_fields(refused) == {} and refused.reason == "TargetNotEmpty"
    # matched null: the backup recorded no counts, so nothing mismatched.
    unknown = read_outcome(json.dumps({"ok": True, "tables": 1, "rows": 3, "matched": None}), None)
    assert restore_fields(unknown)["verification"]["matched"] is True
