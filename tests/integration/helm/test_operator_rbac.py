"""The operator does its whole job with nothing but the chart's namespace-scoped RBAC.

`kubectl auth can-i` (test_chart.py) shows what the rules allow; this shows they are enough: the
chart is installed with `rbac.scope=namespace`, the operator runs with exactly the Deployment's
command and environment, logged in with a token minted for the chart's ServiceAccount
(TokenRequest), applies and rolls back a Migration, and takes a backup. Any call the rules
forbid shows up as a 403 in its log. The Deployment's own pod is skipped by the node runner, so
only this copy runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.kube import Cluster, Kubectl, wait_for
from harness.ports import free_port
from integration.helm.helm_helpers import CHART, Helm

pytestmark = pytest.mark.integration

RELEASE = "km"
SA = f"{RELEASE}-kubemigrate"
#: kopf's optional cluster-wide scans, which it gives up on (with a warning) when forbidden
TOLERATED_403 = (
    'cannot list resource "namespaces"',
    'cannot list resource "customresourcedefinitions"',
    'cannot watch resource "namespaces"',
    'cannot watch resource "customresourcedefinitions"',
)

MIGRATION = """
apiVersion: kubemigrate.dev/v1alpha1
kind: Migration
metadata:
  name: create-widgets
spec:
  database:
    secretRef: {name: app-db}
  version: "001"
  sql: CREATE TABLE widgets (id bigint PRIMARY KEY, name text NOT NULL);
  rollbackSql: DROP TABLE widgets;
"""


BACKUP = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: backups}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: kubemigrate.dev/v1alpha1
kind: DatabaseBackup
metadata: {name: nightly}
spec:
  database: {secretRef: {name: app-db}}
  storage: {persistentVolumeClaim: {claimName: backups}}
"""


def _sa_kubeconfig(cluster: Cluster, token: str, path: Path) -> None:
    """The admin kubeconfig's cluster entry with the ServiceAccount's token as the only user."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    entry = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [entry],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {"name": "operator", "context": {"cluster": entry["name"], "user": "operator"}}
                ],
                "current-context": "operator",
            }
        )
    )


def _deployment(helm: Helm, namespace: str) -> dict[str, Any]:
    manifest = helm.run("get", "manifest", RELEASE, "--namespace", namespace).stdout
    return next(d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "Deployment")


class Operator:
    """The operator process and its log."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc, self.log = proc, log

    def check_alive(self) -> None:
        """Fail at once, with the log's tail, if the operator has exited."""
        if self.proc.poll() is not None:
            tail = "\n".join(self.log.read_text().splitlines()[-30:])
            raise AssertionError(f"the operator exited {self.proc.returncode}:\n{tail}")


@pytest.fixture
def operator(
    helm: Helm,
    kubectl: Kubectl,
    cluster: Cluster,
    namespace: str,
    database_url: str,
    tmp_path: Path,
) -> Iterator[Operator]:
    """The chart installed namespace-scoped, and its operator running as its ServiceAccount."""
    helm.run(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "crds.create=false",
        "--set",
        "rbac.scope=namespace",
        "--set",
        "podAnnotations.kubemigrate\\.dev/node-runner=skip",
    )
    kubectl.run(
        "create",
        "secret",
        "generic",
        "app-db",
        "-n",
        namespace,
        f"--from-literal=url={database_url}",
    )
    token = kubectl.run("create", "token", SA, "-n", namespace, "--duration=1h").stdout.strip()
    kubeconfig = tmp_path / "operator.kubeconfig"
    _sa_kubeconfig(cluster, token, kubeconfig)

    (container,) = _deployment(helm, namespace)["spec"]["template"]["spec"]["containers"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEMIGRATE_")}
    env.update({e["name"]: e["value"] for e in container["env"]})
    metrics, liveness = free_port(), free_port()
    env.update(KUBECONFIG=str(kubeconfig), KUBEMIGRATE_METRICS_PORT=str(metrics))
    command = [arg.replace(":8081/", f":{liveness}/") for arg in container["command"]]
    command[0] = str(Path(sys.executable).parent / command[0])  # kopf from this venv

    log = tmp_path / "operator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Operator(proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        helm.run("uninstall", RELEASE, "--namespace", namespace, check=False)


def _phase(kubectl: Kubectl, namespace: str, operator: Operator) -> str | None:
    operator.check_alive()
    obj = kubectl.json("get", "migration", "create-widgets", "-n", namespace)
    return (obj.get("status") or {}).get("phase")


def test_operator_applies_rolls_back_and_backs_up_with_chart_rbac(
    kubectl: Kubectl, namespace: str, operator: Operator
) -> None:
    kubectl.apply(MIGRATION, "-n", namespace)
    wait_for(
        lambda: _phase(kubectl, namespace, operator) == "Succeeded",
        timeout=180,
        interval=1,
        what=f"Migration Succeeded (operator log: {operator.log})",
    )
    kubectl.run(
        "patch",
        "migration",
        "create-widgets",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"rollback":true}}',
    )
    wait_for(
        lambda: _phase(kubectl, namespace, operator) == "RolledBack",
        timeout=60,
        interval=1,
        what="Migration RolledBack",
    )
    kubectl.apply(BACKUP, "-n", namespace)
    kubectl.run(
        "wait", "--for=condition=Ready", "databasebackup/nightly", "-n", namespace, "--timeout=120s"
    )
    backup = kubectl.json("get", "databasebackup", "nightly", "-n", namespace)["status"]
    assert backup["phase"] == "Succeeded" and backup["sha256"] and backup["sizeBytes"] > 0
    forbidden = [
        line
        for line in operator.log.read_text().splitlines()
        if "forbidden" in line.lower() and not any(t in line for t in TOLERATED_403)
    ]
    assert not forbidden, "\n".join(forbidden)
