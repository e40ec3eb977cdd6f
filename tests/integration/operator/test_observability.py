"""What cluster tooling sees: Prometheus metrics moving, and Argo CD's health check reading real
Migration objects (Healthy, Progressing, Degraded) as the operator wrote them."""

from __future__ import annotations

import re
import urllib.request

import pytest

from harness.argocd import run_health
from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import migration, set_rollback, wait_phase

pytestmark = pytest.mark.integration


def metric(op: OperatorProcess, name: str, **labels: str) -> float:
    """One sample from the operator's /metrics, 0 when absent."""
    url = f"http://127.0.0.1:{op.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m and ",".join(sorted(m.group(1).split(","))) == wanted:
            return float(m.group(2))
    return 0.0


def test_metrics_count_applied_failed_and_rolled_back(
    kubectl: Kubectl, namespace: str, db_secret: str, operator: OperatorProcess
) -> None:
    assert (
        metric(operator, "kubemigrate_migrations_total", namespace=namespace, outcome="applied")
        == 0
    )
    kubectl.apply(
        migration(
            "m1",
            "1",
            "CREATE TABLE t (id int);",
            rollback_sql="DROP TABLE t;",
            preflight={"enabled": False},
        ),
        "-n",
        namespace,
    )
    wait_phase(kubectl, namespace, "m1", "Succeeded")
    kubectl.apply(
        migration("m2", "2", "SELECT 1/0;", preflight={"enabled": False}), "-n", namespace
    )
    wait_phase(kubectl, namespace, "m2", "Failed")
    kubectl.run("delete", "migration", "m2", "-n", namespace)
    set_rollback(kubectl, namespace, "m1", True)
    wait_phase(kubectl, namespace, "m1", "RolledBack")
    for outcome in ("applied", "failed", "rolled_back"):
        assert wait_for(
            lambda o=outcome: (
                metric(operator, "kubemigrate_migrations_total", namespace=namespace, outcome=o)
                == 1
            ),
            timeout=10,
            what=f"the {outcome} counter",
        )
    assert (
        metric(
            operator,
            "kubemigrate_migration_duration_seconds_count",
            namespace=namespace,
            kind="apply",
        )
        >= 2
    )


def test_argocd_health_of_real_objects(
    kubectl: Kubectl, namespace: str, db_secret: str, operator: OperatorProcess
) -> None:
    kubectl.apply(
        migration("ok", "1", "CREATE TABLE ok (id int);", preflight={"enabled": False})
        + "---\n"
        + migration("broken", "2", "SELEC 1;", preflight={"enabled": False})
        + "---\n"
        + migration("waiting", "3", "SELECT 1;", depends_on=("nobody",)),
        "-n",
        namespace,
    )
    wait_phase(kubectl, namespace, "ok", "Succeeded")
    wait_phase(kubectl, namespace, "broken", "Failed")
    wait_phase(kubectl, namespace, "waiting", "Pending")

    def health(name: str) -> dict[str, str]:
        return run_health(kubectl.json("get", "migration", name, "-n", namespace))

    assert health("ok")["status"] == "Healthy"
    degraded = health("broken")
    assert degraded["status"] == "Degraded"
    assert "42601" in degraded["message"]
    progressing = health("waiting")
    assert progressing["status"] == "Progressing"
    assert "nobody" in progressing["message"]
