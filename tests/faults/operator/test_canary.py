"""The Secret-value canary: every Secret of a run holds a unique token where the secret is (the
database password: right, wrong during a rotation, and with the database unreachable), the run
goes through preflight, apply, a pre-migration backup, a rollback by restore, a backup and a
preflight that fail on the wrong password; then status, Events, Job specs, pods' termination
messages, the operator's log and every log of the local stack are searched: 0 hits."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import yaml

from faults.operator.figures import record
from faults.operator.leaks import PLACES, leaks
from harness import databases
from harness.kube import Cluster, Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.backups import backup, claim, wait_done
from integration.operator.manifests import migration, set_rollback, status, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _secret(kubectl: Kubectl, namespace: str, name: str, url: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"url": url},
    }
    kubectl.apply(yaml.safe_dump(manifest), "-n", namespace)


def test_no_secret_value_reaches_status_events_jobs_or_logs(
    cluster: Cluster,
    kubectl: Kubectl,
    namespace: str,
    database_url: str,
    password_role: Callable[[str], str],
    start_operator: Callable[..., OperatorProcess],
    crds: list[str],
) -> None:
    canary = f"CANARY{uuid.uuid4().hex[:16]}"
    role = password_role(f"pw-{canary}")
    _secret(kubectl, namespace, "db", databases.with_user(database_url, role, f"pw-{canary}"))
    _secret(kubectl, namespace, "rotated", databases.with_user(database_url, role, f"old-{canary}"))
    _secret(kubectl, namespace, "gone", f"postgresql://{role}:{canary}@127.0.0.1:1/nowhere")
    op = start_operator()
    kubectl.apply(claim(), "-n", namespace)
    storage = {"storage": {"persistentVolumeClaim": {"claimName": "backups"}}}
    kubectl.apply(
        migration(
            "m1",
            "1",
            "CREATE TABLE canary_t (id int);",
            backup=storage,
            rollbackStrategy="restore",
        )
        + "---\n"
        + migration("m-rotated", "1", "SELECT 1;", secret="rotated")
        + "---\n"
        + migration("m-gone", "1", "SELECT 1;", secret="gone")
        + "---\n"
        + backup("nightly")
        + "---\n"
        + backup("rotated-backup", secret="rotated"),
        "-n",
        namespace,
    )
    wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=120)
    set_rollback(kubectl, namespace, "m1", True)
    wait_phase(kubectl, namespace, "m1", "RolledBack", timeout=120)
    assert wait_done(kubectl, namespace, "dbbackup", "nightly", timeout=90)["phase"] == "Succeeded"
    assert wait_done(kubectl, namespace, "dbbackup", "rotated-backup", timeout=90)["phase"] == (
        "Failed"
    )
    for name in ("m-rotated", "m-gone"):
        wait_for(
            lambda name=name: (status(kubectl, namespace, name).get("failedAttempts") or 0) >= 2,
            timeout=90,
            what=f"{name}'s second failed preflight",
        )
    found = leaks(cluster, kubectl, namespace, canary, [op])
    logs = len(list(cluster.state_dir.rglob("*.log"))) if cluster.state_dir else 0
    record(
        "Secret-value canary hits",
        len(found),
        f"searched {len(PLACES)} kinds of object, the operator's log and {logs} stack logs",
    )
    assert not found, "\n".join(found[:40])
