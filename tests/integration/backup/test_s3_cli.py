"""Backups in object storage through the CLI, against a real S3 server (moto, loopback, with
authentication on): backup, verify, restore into a new database with identical content, a
corrupted object refused by its sha256, wrong or missing credentials, an interrupted upload
leaving no parts, delete."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.s3 import S3Server
from integration.backup.backup_helpers import ROWS, fingerprint, query
from integration.cli.cli_helpers import run_cli, start_cli

pytestmark = pytest.mark.integration


def keys(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def uploads(server: S3Server, bucket: str) -> list[str]:
    """Multipart uploads begun and neither completed nor aborted: orphaned parts."""
    listed = server.client().list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in listed.get("Uploads", [])]


@pytest.mark.parametrize("fmt", ["custom", "plain", "directory"])
def test_backup_to_s3_verifies_and_restores_identical_content(
    fmt: str,
    source_url: str,
    s3_server: S3Server,
    s3_bucket: str,
    new_database: Callable[[], str],
    pg_admin_url: str,
    tmp_path: Path,
) -> None:
    env = s3_server.env()
    where = f"s3://{s3_bucket}/prod/app-{fmt}.dump"
    log = tmp_path / "backup.json"
    jobs = ["--jobs", "2"] if fmt == "directory" else []
    made = run_cli(
        "backup",
        "--database-url",
        source_url,
        "-o",
        where,
        "--format",
        fmt,
        *jobs,
        "--verify",
        "--scratch-url",
        pg_admin_url,
        "--termination-log",
        str(log),
        env=env,
    )
    assert made.returncode == 0, made
    data = json.loads(log.read_text())
    assert data["ok"] is True and data["location"] == where and data["verified"] is True
    assert data["verification"]["matched"] is True
    assert keys(s3_server, s3_bucket) == [f"prod/app-{fmt}.dump", f"prod/app-{fmt}.dump.meta.json"]
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=f"prod/app-{fmt}.dump")
    assert head["ContentLength"] == data["sizeBytes"]
    sidecar = s3_server.client().get_object(Bucket=s3_bucket, Key=f"prod/app-{fmt}.dump.meta.json")
    meta = json.loads(sidecar["Body"].read())
    assert meta["sha256"] == data["sha256"] and meta["format"] == fmt
    assert sum(meta["tables"].values()) == sum(ROWS.values())

    checked = run_cli("verify-backup", where, "--json", env=env)
    assert checked.returncode == 0, checked
    assert json.loads(checked.stdout)["ok"] is True

    target = new_database()
    restored = run_cli("restore", where, "--database-url", target, *jobs, env=env)
    assert restored.returncode == 0, restored
    assert "all match" in restored.stdout
    assert fingerprint(target) == fingerprint(source_url)
    assert uploads(s3_server, s3_bucket) == []

    gone = run_cli("delete-backup", where, "--json", env=env)
    assert gone.returncode == 0, gone
    assert keys(s3_server, s3_bucket) == []


def test_a_corrupted_object_is_refused_by_its_sha256_and_the_target_is_untouched(
    source_url: str, s3_server: S3Server, s3_bucket: str, new_database: Callable[[], str]
) -> None:
    env, where = s3_server.env(), f"s3://{s3_bucket}/app.dump"
    assert run_cli("backup", "--database-url", source_url, "-o", where, env=env).returncode == 0
    client = s3_server.client()
    body = bytearray(client.get_object(Bucket=s3_bucket, Key="app.dump")["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped byte, same size
    client.put_object(Bucket=s3_bucket, Key="app.dump", Body=bytes(body))

    target = new_database()
    restored = run_cli("restore", where, "--database-url", target, env=env)
    assert restored.returncode == 1, restored
    assert "does not match its recorded sha256" in restored.stderr
    assert query(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    checked = run_cli("verify-backup", where, env=env)
    assert checked.returncode == 1 and "sha256" in checked.output, checked


def test_wrong_or_missing_credentials_fail_with_a_reason_and_never_show_them(
    source_url: str, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    where = f"s3://{s3_bucket}/app.dump"
    wrong = {**s3_server.env(), "AWS_SECRET_ACCESS_KEY": "Wr0ng-s3cret-Value-xyz"}
    log = tmp_path / "wrong.json"
    done = run_cli(
        "backup", "--database-url", source_url, "-o", where, "--termination-log", str(log),
        env=wrong,
    )  # fmt: skip
    assert done.returncode == 1, done
    data = json.loads(log.read_text())
    assert data["reason"] == "ObjectStoreAccessDenied", data
    assert "refused" in data["error"] and "credentials" in data["error"]
    for secret in ("Wr0ng-s3cret-Value-xyz", s3_server.access_key_id):
        assert secret not in done.output and secret not in log.read_text()

    missing = {
        k: v
        for k, v in s3_server.env().items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    started = time.monotonic()
    done = run_cli("backup", "--database-url", source_url, "-o", where, "--json", env=missing)
    assert done.returncode == 1, done
    data = json.loads(done.stdout)
    assert data["reason"] == "ObjectStoreAccessDenied", data
    assert "without credentials" in data["error"]
    assert time.monotonic() - started < 90
    assert keys(s3_server, s3_bucket) == [] and uploads(s3_server, s3_bucket) == []


def test_an_interrupted_upload_leaves_no_parts_and_no_object(
    database_url: str, s3_server: S3Server, s3_bucket: str
) -> None:
    query(
        database_url,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS payload "
        "FROM generate_series(1, 1500000) g",
    )
    where = f"s3://{s3_bucket}/big.dump"
    cli = start_cli(
        "backup", "--database-url", database_url, "-o", where, "--compress", "0",
        env=s3_server.env(),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not uploads(s3_server, s3_bucket):  # a multipart upload is under way
        assert cli.poll() is None and time.monotonic() < deadline, "no upload began"
        time.sleep(0.05)
    cli.send_signal(signal.SIGTERM)  # what a Job's deadline or a deleted pod sends first
    out, err = cli.communicate(timeout=30)
    assert cli.returncode == 130, (out, err)
    assert uploads(s3_server, s3_bucket) == []
    assert keys(s3_server, s3_bucket) == []


def test_an_existing_backup_is_not_overwritten_and_a_missing_one_is_reported(
    source_url: str, s3_server: S3Server, s3_bucket: str, new_database: Callable[[], str]
) -> None:
    env, where = s3_server.env(), f"s3://{s3_bucket}/app.dump"
    assert run_cli("backup", "--database-url", source_url, "-o", where, env=env).returncode == 0
    again = run_cli("backup", "--database-url", source_url, "-o", where, env=env)
    assert again.returncode == 1 and "already exists" in again.stderr, again
    missing = run_cli(
        "restore", f"s3://{s3_bucket}/nope.dump", "--database-url", new_database(), env=env
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr, missing
    assert run_cli("delete-backup", f"s3://{s3_bucket}/nope.dump", env=env).returncode == 0
