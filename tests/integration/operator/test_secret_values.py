"""A Secret's value reaches no record the cluster keeps: whoever may create a Migration or a
DatabaseBackup may point it at any key of any Secret in the namespace, and must not be able to
read that key back from a status, an Event, a Job, a pod's termination message or output, or
the operator's log (issue 10, defect 1).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from harness.kube import Cluster, Kubectl
from harness.operator import OperatorProcess
from integration.operator.backups import backup, claim, wait_done
from integration.operator.manifests import migration, wait_phase

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


BOUNDED = {"KUBEMIGRATE_LOGIN_ATTEMPTS": "3", "KUBEMIGRATE_RETRY_MAX_SECONDS": "2"}
"""A few attempts, quickly: every retry is one more chance to leak, and the test waits for the
resource to settle (a value that is no URL stalls it, like a refused login)."""


def test_a_migration_pointed_at_another_apps_token_never_shows_it(
    kubectl: Kubectl,
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., OperatorProcess],
    crds: list[str],
) -> None:
    operator = start_operator(**BOUNDED)
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
    st = wait_phase(kubectl, namespace, "m1", "Failed", timeout=90)
    assert canary not in records(kubectl, cluster, namespace, operator)
    assert (st["reason"], st["failedLogins"]) == ("InvalidDatabaseUrl", 3)
    connectivity = next(c for c in st["preflight"] if c["name"] == "connectivity")
    assert connectivity["passed"] is False
    assert "not a PostgreSQL URL" in connectivity["message"]


def test_a_backup_pointed_at_another_apps_token_never_shows_it(
    kubectl: Kubectl,
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., OperatorProcess],
    crds: list[str],
) -> None:
    operator = start_operator(**BOUNDED)
    canary = plant(kubectl, namespace)
    manifest = backup("b1", database={"secretRef": {"name": "other-app", "key": "token"}})
    kubectl.apply(claim() + "---\n" + manifest, "-n", namespace)
    st = wait_done(kubectl, namespace, "dbbackup", "b1", timeout=90)
    assert canary not in records(kubectl, cluster, namespace, operator)
    assert st["phase"] == "Failed"
    assert (st["reason"], st["failedLogins"]) == ("InvalidDatabaseUrl", 3)
    assert "not a PostgreSQL URL" in st["message"]
