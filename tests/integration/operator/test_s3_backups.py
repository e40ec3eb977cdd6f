"""DatabaseBackup and DatabaseRestore with object storage, end to end: the Jobs (from the dev
image, on the host's network) write to and read from a real S3 server (moto, authentication on);
credentials come from a Secret by secretKeyRef; wrong ones fail with a reason that quotes none
of them; retention and deletion remove the objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from harness import databases
from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from harness.s3 import S3Server
from integration.operator.backups import fingerprint, seed, wait_done

pytestmark = pytest.mark.integration


@pytest.fixture
def other_url(pg_admin_url: str) -> Iterator[str]:
    url = databases.create(pg_admin_url)
    try:
        yield url
    finally:
        databases.drop(pg_admin_url, url)


def s3_secret(kubectl: Kubectl, namespace: str, name: str, key_id: str, secret: str) -> None:
    kubectl.run(
        "create", "secret", "generic", name, "-n", namespace,
        f"--from-literal=id={key_id}", f"--from-literal=secret={secret}",
    )  # fmt: skip


def store(server: S3Server, bucket: str, secret: str = "s3") -> dict[str, Any]:
    return {
        "bucket": bucket,
        "prefix": "backups",
        "endpoint": server.endpoint,
        "region": server.region,
        "forcePathStyle": True,
        "secretRef": {"name": secret, "accessKeyIdKey": "id", "secretAccessKeyKey": "secret"},
    }


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def backup(name: str, server: S3Server, bucket: str, **spec: Any) -> str:
    body = {
        "database": {"secretRef": {"name": "db"}},
        "storage": {"objectStore": store(server, bucket)},
    }
    return manifest("DatabaseBackup", name, {**body, **spec})


def keys(server: S3Server, bucket: str) -> set[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listed.get("Contents", [])}


def test_backup_to_s3_restore_by_ref_and_by_source_then_retention_deletes_objects(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    other_url: str,
    pg_admin_url: str,
    s3_server: S3Server,
    s3_bucket: str,
    operator: OperatorProcess,
) -> None:
    seed(database_url)
    s3_secret(kubectl, namespace, "s3", s3_server.access_key_id, s3_server.secret_access_key)
    kubectl.apply(
        backup("first", s3_server, s3_bucket, verify={"restore": True}, retention={"keepLast": 1}),
        "-n",
        namespace,
    )
    st = wait_done(kubectl, namespace, "dbbackup", "first", timeout=120)
    assert st["phase"] == "Succeeded", st
    uid = kubectl.json("get", "dbbackup", "first", "-n", namespace)["metadata"]["uid"]
    key = f"backups/{namespace}/first-{uid[:8]}.dump"
    assert st["location"] == f"s3://{s3_bucket}/{key}"
    assert st["verified"] is True and st["verification"]["matched"] is True
    assert keys(s3_server, s3_bucket) == {key, f"{key}.meta.json"}
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentLength"] == st["sizeBytes"]

    # Restore by backupRef into another database: identical content.
    kubectl.run(
        "create", "secret", "generic", "other", "-n", namespace, f"--from-literal=url={other_url}"
    )
    kubectl.apply(
        manifest(
            "DatabaseRestore",
            "by-ref",
            {"backupRef": {"name": "first"}, "database": {"secretRef": {"name": "other"}}},
        ),
        "-n",
        namespace,
    )
    rst = wait_done(kubectl, namespace, "dbrestore", "by-ref", timeout=120)
    assert rst["phase"] == "Succeeded", rst
    assert fingerprint(other_url) == fingerprint(database_url)

    # Restore by source (no DatabaseBackup involved) into a third database.
    third = databases.create(pg_admin_url)
    try:
        kubectl.run(
            "create", "secret", "generic", "third", "-n", namespace, f"--from-literal=url={third}"
        )
        source = {**store(s3_server, s3_bucket), "key": f"{namespace}/first-{uid[:8]}.dump"}
        kubectl.apply(
            manifest(
                "DatabaseRestore",
                "by-source",
                {"source": {"objectStore": source}, "database": {"secretRef": {"name": "third"}}},
            ),
            "-n",
            namespace,
        )
        rst = wait_done(kubectl, namespace, "dbrestore", "by-source", timeout=120)
        assert rst["phase"] == "Succeeded", rst
        assert fingerprint(third) == fingerprint(database_url)
    finally:
        databases.drop(pg_admin_url, third)

    # keepLast: 1 -- the second backup's success deletes the first, resource and objects.
    kubectl.apply(
        backup("second", s3_server, s3_bucket, retention={"keepLast": 1}), "-n", namespace
    )
    st2 = wait_done(kubectl, namespace, "dbbackup", "second", timeout=120)
    assert st2["phase"] == "Succeeded", st2
    key2 = st2["location"].removeprefix(f"s3://{s3_bucket}/")
    wait_for(
        lambda: keys(s3_server, s3_bucket) == {key2, f"{key2}.meta.json"},
        timeout=60,
        what=f"retention to delete the first backup's objects: {keys(s3_server, s3_bucket)}",
    )
    kubectl.run("delete", "dbbackup", "second", "-n", namespace, "--timeout=60s")
    assert keys(s3_server, s3_bucket) == set()
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads") is None


def test_wrong_credentials_fail_with_a_reason_that_quotes_none_of_them(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    s3_server: S3Server,
    s3_bucket: str,
    operator: OperatorProcess,
) -> None:
    seed(database_url)
    wrong = "Wr0ng-S3-secret-in-a-Secret"
    s3_secret(kubectl, namespace, "s3", s3_server.access_key_id, wrong)
    kubectl.apply(backup("denied", s3_server, s3_bucket), "-n", namespace)
    st = wait_done(kubectl, namespace, "dbbackup", "denied", timeout=120)
    assert st["phase"] == "Failed", (st, keys(s3_server, s3_bucket))
    assert st["reason"] == "ObjectStoreAccessDenied", st
    assert "credentials" in st["message"]
    events = kubectl.run("get", "events", "-n", namespace, "-o", "yaml").stdout
    shown = kubectl.run("get", "dbbackup", "denied", "-n", namespace, "-o", "yaml").stdout
    for text in (events, shown, operator.text()):
        assert wrong not in text and s3_server.access_key_id not in text
    assert keys(s3_server, s3_bucket) == set()

    # A missing credentials Secret keeps the backup Pending with the reason, and no Job starts.
    kubectl.apply(
        manifest(
            "DatabaseBackup",
            "no-secret",
            {
                "database": {"secretRef": {"name": "db"}},
                "storage": {"objectStore": store(s3_server, s3_bucket, secret="absent")},
            },
        ),
        "-n",
        namespace,
    )

    def pending() -> dict[str, Any] | None:
        got = kubectl.json("get", "dbbackup", "no-secret", "-n", namespace).get("status") or {}
        return got if got.get("reason") == "SecretNotFound" else None

    found = wait_for(pending, timeout=30, what="the backup to wait for its Secret")
    assert found["phase"] == "Pending" and "absent" in found["message"]
    # Deleting it never wedges, though no Job could ever have reached the bucket.
    kubectl.run("delete", "dbbackup", "no-secret", "-n", namespace, "--timeout=30s")
