"""A Secret's value reaches no record the cluster keeps: whoever may create a Migration or a
DatabaseBackup may point it at any key of any Secret in the namespace, and must not be able to
read that key back from a status, an Event, a Job, a pod's termination message or output, or
the operator's log (issue 10, defect 1).
"""

from __future__ import annotations

import uuid

import pytest

from harness.kube import Cluster, Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.backups import backup, claim, wait_done
from integration.operator.manifests import migration, status

pytestmark = pytest.mark.integration

KINDS = "migrations,databasebackups,events,jobs,pods,configmaps"


def plant(kubectl: Kubectl, namespace: str) -> str:
    """Secret other-app, key token: a unique canary that is no connection string."""
    canary = f"TOPSECRET-{uuid.uuid4().hex}"
    literal = f"--from-literal=token={canary}"
    kubectl.run("create", "secret", "generic", "other-app", "-n", namespace, literal)
    return canary


def records(kubectl: Kubectl, cluster: Cluster, namespace: str, operator: OperatorProcess) -> str:
    """Everything the cluster keeps of the namespace's work but the Secret itself: objects with
    their status, Events, Jobs, pods (their termination messages), pods' output, and the
    operator's log."""
    text = kubectl.run("get", KINDS, "-n", namespace, "-o", "yaml").stdout
    if cluster.state_dir is not None:
        for log in sorted((cluster.state_dir / "node" / "logs").glob(f"{namespace}_*.log")):
            text += log.read_text(errors="replace")
    return text + operator.text()


def test_a_migration_pointed_at_another_apps_token_never_shows_it(
    kubectl: Kubectl, cluster: Cluster, namespace: str, operator: OperatorProcess, crds: list[str]
) -> None:
    canary = plant(kubectl, namespace)
    kubectl.apply(
        migration(
            "m1",
            "1",
            "CREATE TABLE never (id int);",
            database={"secretRef": {"name": "other-app", "key": "token"}},
        ),
        "-n",
        namespace,
    )
    st = wait_for(
        lambda: (s := status(kubectl, namespace, "m1")).get("reason") == "PreflightFailed" and s,
        timeout=90,
        what="the preflight to fail",
    )
    assert canary not in records(kubectl, cluster, namespace, operator)
    connectivity = next(c for c in st["preflight"] if c["name"] == "connectivity")
    assert connectivity["passed"] is False
    assert "not a PostgreSQL URL" in connectivity["message"]


def test_a_backup_pointed_at_another_apps_token_never_shows_it(
    kubectl: Kubectl, cluster: Cluster, namespace: str, operator: OperatorProcess, crds: list[str]
) -> None:
    canary = plant(kubectl, namespace)
    manifest = backup("b1", database={"secretRef": {"name": "other-app", "key": "token"}})
    kubectl.apply(claim() + "---\n" + manifest, "-n", namespace)
    st = wait_done(kubectl, namespace, "dbbackup", "b1")
    assert canary not in records(kubectl, cluster, namespace, operator)
    assert st["phase"] == "Failed"
    assert st["reason"] == "InvalidDatabaseUrl"
    assert "not a PostgreSQL URL" in st["message"]
