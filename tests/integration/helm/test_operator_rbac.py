"""The operator does its whole job with nothing but the chart's namespace-scoped RBAC.

`kubectl auth can-i` (test_chart.py) shows what the rules allow; this shows they are enough: the
chart is installed with `rbac.scope=namespace` and the project's image (localhost/kubemigrate:dev),
its Deployment's pod runs the operator in-cluster from that image, logged in as the chart's
ServiceAccount through its projected token, and applies and rolls back a Migration and takes a
backup, whose Job runs from the same image. Any call the rules forbid shows up as a 403 in the
pod's log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.image.build import DEV_REPOSITORY, DEV_TAG
from harness.image.store import LocalImage
from harness.kube import Cluster, Kubectl, wait_for
from harness.node.dirs import pod_log_path
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


@dataclass(frozen=True)
class Operator:
    """The chart's operator pod and its log."""

    kubectl: Kubectl
    namespace: str
    log: Path

    def pod(self) -> dict[str, Any]:
        return _operator_pod(self.kubectl, self.namespace)

    def check_alive(self) -> None:
        """Fail at once, with the log's tail, if the operator's container has exited."""
        [status] = self.pod()["status"]["containerStatuses"]
        if "running" not in status["state"] or status["restartCount"]:
            tail = "\n".join(self.log.read_text().splitlines()[-30:])
            raise AssertionError(f"the operator's container is not running: {status}\n{tail}")


@pytest.fixture
def operator(
    helm: Helm,
    kubectl: Kubectl,
    cluster: Cluster,
    namespace: str,
    database_url: str,
    crds: list[str],
    dev_image: LocalImage,
) -> Iterator[Operator]:
    """The chart installed namespace-scoped from the dev image, its operator pod running."""
    if not cluster.local or cluster.state_dir is None:
        pytest.skip("needs the local stack's node runner to run the operator's pod")
    kubectl.run(
        "create",
        "secret",
        "generic",
        "app-db",
        "-n",
        namespace,
        f"--from-literal=url={database_url}",
    )
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
        f"image.repository={DEV_REPOSITORY}",
        "--set",
        f"image.tag={DEV_TAG}",
        "--set",
        f"metrics.port={free_port()}",
        "--set",
        f"liveness.port={free_port()}",
        "--wait",
        "--timeout",
        "120s",
    )
    name = _operator_pod(kubectl, namespace)["metadata"]["name"]
    op = Operator(kubectl, namespace, pod_log_path(cluster.state_dir / "node", namespace, name))
    wait_for(
        lambda: "kubemigrate operator started" in _text(op.log),
        timeout=60,
        what=f"the operator to start (log: {op.log})",
    )
    try:
        yield op
    finally:
        helm.run("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)


def _operator_pod(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    [pod] = kubectl.json(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=operator"
    )["items"]
    return pod  # type: ignore[no-any-return]


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


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
        for line in _text(operator.log).splitlines()
        if "forbidden" in line.lower() and not any(t in line for t in TOLERATED_403)
    ]
    assert not forbidden, "\n".join(forbidden)


def test_operator_and_its_jobs_run_from_the_image_make_image_built(
    kubectl: Kubectl, namespace: str, operator: Operator, dev_image: LocalImage
) -> None:
    [status] = operator.pod()["status"]["containerStatuses"]
    assert status["image"] == f"{DEV_REPOSITORY}:{DEV_TAG}"
    assert status["imageID"] == f"{DEV_REPOSITORY}@{dev_image.digest}"
    kubectl.apply(MIGRATION, "-n", namespace)
    wait_for(
        lambda: _phase(kubectl, namespace, operator) == "Succeeded",
        timeout=180,
        interval=1,
        what=f"Migration Succeeded (operator log: {operator.log})",
    )
    jobs = kubectl.json(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/managed-by=kubemigrate"
    )["items"]
    assert jobs, "the migration's preflight Job left no pod"
    for pod in jobs:
        [job_status] = pod["status"]["containerStatuses"]
        assert job_status["imageID"] == dev_image.image_id
