"""DatabaseBackup end to end: pg_dump in a Job onto a PersistentVolumeClaim, verified; failures
end Failed with their reason; retention prunes resources and files; one backup at a time."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable

import psycopg
import pytest

from harness import databases, postgres
from harness.kube import Cluster, Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.backups import (
    backup,
    claim,
    files,
    fingerprint,
    pvc_dir,
    restore,
    seed,
    wait_done,
)

pytestmark = pytest.mark.integration

WRONG = "wrong-Pa55word-backup"


def test_backup_is_verified_and_restores_what_was_dropped(
    kubectl: Kubectl,
    cluster: Cluster,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    seed(database_url)
    before = fingerprint(database_url)
    kubectl.apply(claim() + "---\n" + backup("nightly", verify={"restore": True}), "-n", namespace)
    st = wait_done(kubectl, namespace, "dbbackup", "nightly")
    assert st["phase"] == "Succeeded", st
    uid = kubectl.json("get", "dbbackup", "nightly", "-n", namespace)["metadata"]["uid"]
    assert st["location"] == f"pvc://backups/{namespace}/nightly-{uid[:8]}.dump"
    assert st["verified"] is True
    assert st["verification"] == {"tables": 2, "rows": 1700, "matched": True, "mismatches": []}
    assert len(st["sha256"]) == 64 and st["sizeBytes"] > 0
    assert st["serverVersion"][0].isdigit()
    assert st["durationSeconds"] >= 0 and st["startedAt"] and st["completedAt"]
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    dump = pvc_dir(cluster, namespace) / namespace / f"nightly-{uid[:8]}.dump"
    assert dump.stat().st_size == st["sizeBytes"]
    # The test restore's scratch database is gone again.
    assert not databases_like(database_url, "kubemigrate_verify_%")
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics") as resp:
        metrics = resp.read().decode()
    counter = f'kubemigrate_backups_total{{namespace="{namespace}",outcome="succeeded"}} 1.0'
    assert counter in metrics
    assert "kubemigrate_backup_size_bytes{" in metrics

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE orders")
        conn.execute("UPDATE customers SET name = 'changed' WHERE id < 10")
    kubectl.apply(restore("back", "nightly", clean=True), "-n", namespace)
    rst = wait_done(kubectl, namespace, "dbrestore", "back")
    assert rst["phase"] == "Succeeded", rst
    assert rst["verification"] == {"tables": 2, "rows": 1700, "matched": True, "mismatches": []}
    assert rst["durationSeconds"] >= 0
    assert fingerprint(database_url) == before
    table = kubectl.run("get", "dbbackup", "-n", namespace).stdout.split("\n")[0].split()
    assert table == ["NAME", "PHASE", "SIZE", "DURATION", "VERIFIED", "AGE"]


def databases_like(url: str, pattern: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern]
        ).fetchall()
    return [r[0] for r in rows]


def test_wrong_password_is_retried_then_fails_and_records_no_backup(
    kubectl: Kubectl,
    cluster: Cluster,
    namespace: str,
    database_url: str,
    pg_admin_url: str,
    start_operator: Callable[..., OperatorProcess],
    crds: list[str],
) -> None:
    """The rule a Migration follows too: a few attempts with backoff, then Stalled."""
    operator = start_operator(KUBEMIGRATE_LOGIN_ATTEMPTS="3", KUBEMIGRATE_RETRY_MAX_SECONDS="2")
    databases.ensure_role(pg_admin_url, postgres.PASSWORD_ROLE, "the-right-one")
    url = databases.with_user(database_url, postgres.PASSWORD_ROLE, WRONG)
    kubectl.run(
        "create", "secret", "generic", "baddb", "-n", namespace, f"--from-literal=url={url}"
    )
    kubectl.apply(claim() + "---\n" + backup("bad", secret="baddb"), "-n", namespace)
    st = wait_done(kubectl, namespace, "dbbackup", "bad", timeout=90)
    assert st["phase"] == "Failed"
    assert st["reason"] == "AuthenticationFailed"
    assert st["failedLogins"] == 3
    assert st["job"] == "bad-backup-g1-2"  # the third Job; the first two were deleted
    assert "3 attempts in a row" in st["message"]
    assert "password authentication failed" in st["message"]
    assert "password authentication failed" in st["lastError"]["message"]
    assert st.get("location") is None and st.get("sha256") is None
    assert st.get("sizeBytes") is None and st.get("verified") is False
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions["Stalled"] == "True" and conditions["Ready"] == "False"
    assert not [f for f in files(cluster, namespace) if not f.startswith(".")]
    everything = (
        kubectl.run("get", "dbbackup", "bad", "-n", namespace, "-o", "yaml").stdout
        + kubectl.run("get", "events", "-n", namespace, "-o", "yaml").stdout
        + kubectl.run("get", "jobs", "-n", namespace, "-o", "yaml").stdout
        + operator.text()
    )
    assert WRONG not in everything


def test_retention_keeps_the_last_n_and_deletes_the_pruned_files(
    kubectl: Kubectl,
    cluster: Cluster,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    seed(database_url)
    kubectl.apply(claim(), "-n", namespace)
    # Created together: they run one at a time, oldest first (creationTimestamp, then name).
    kubectl.apply(
        "---\n".join(backup(f"b{i}", retention={"keepLast": 2}) for i in range(1, 5)),
        "-n",
        namespace,
    )
    for i in range(1, 5):
        wait_done(kubectl, namespace, "dbbackup", f"b{i}")
    wait_for(
        lambda: len(names(kubectl, namespace)) == 2,
        timeout=60,
        what="retention to prune to two backups",
    )
    assert names(kubectl, namespace) == {"b3", "b4"}
    kept = [kubectl.json("get", "dbbackup", n, "-n", namespace)["status"] for n in ("b3", "b4")]
    assert all(s["phase"] == "Succeeded" for s in kept)
    expected = {s["location"].removeprefix("pvc://backups/") for s in kept}
    expected |= {f"{p}.meta.json" for p in expected}
    wait_for(
        lambda: files(cluster, namespace) == expected,
        timeout=30,
        what=f"only the kept backups' files: {files(cluster, namespace)} vs {expected}",
    )
    wait_for(
        lambda: (
            "Deleting backup b2: retention keeps the last 2"
            in kubectl.run("get", "events", "-n", namespace).stdout
        ),
        timeout=20,
        what="the Pruned event",
    )
    # Deleting a backup by hand removes its file too.
    kubectl.run("delete", "dbbackup", "b3", "-n", namespace, "--timeout=60s")
    assert files(cluster, namespace) == {p for p in expected if "b4-" in p}


def names(kubectl: Kubectl, namespace: str) -> set[str]:
    items = kubectl.json("get", "dbbackup", "-n", namespace)["items"]
    return {i["metadata"]["name"] for i in items if not i["metadata"].get("deletionTimestamp")}


def test_deadline_ends_a_blocked_backup_failed(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    seed(database_url)
    release = threading.Event()
    locked = threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(90)

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    try:
        assert locked.wait(10)
        kubectl.apply(claim() + "---\n" + backup("stuck", activeDeadlineSeconds=3), "-n", namespace)
        st = wait_done(kubectl, namespace, "dbbackup", "stuck", timeout=60)
    finally:
        release.set()
        holder.join(10)
    assert st["phase"] == "Failed"
    assert st["reason"] == "DeadlineExceeded"
    assert "deadline" in st["message"].lower()
    assert st.get("location") is None
    assert st["durationSeconds"] >= 3
