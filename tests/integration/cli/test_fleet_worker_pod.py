"""``kubemigrate fleet-worker`` as a wave's Job runs it: pods of the project's image, with the
wave's ServiceAccount token mounted the ordinary way, the migrations and the targets file from
ConfigMaps. Two pods share one ledger; every target runs once, and no pod's output holds a
Secret value."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import databases
from harness.image.store import LocalImage
from harness.kube import Cluster, Kubectl, wait_for
from harness.node.dirs import pod_log_path
from integration.cli.fleet_helpers import LEDGER, SA, Wave

PASSWORD = "canary-pw-pod-41d0"


@pytest.fixture
def node_dir(cluster: Cluster) -> Path:
    if not cluster.local or cluster.state_dir is None:
        pytest.skip("needs the local stack's node runner")
    return cluster.state_dir / "node"


@pytest.fixture
def tenant_urls(pg_admin_url: str) -> Iterator[list[str]]:
    urls = [databases.create(pg_admin_url, prefix="fleet") for _ in range(4)]
    yield urls
    for url in urls:
        databases.drop(pg_admin_url, url)


def config_map(kubectl: Kubectl, namespace: str, name: str, data: dict[str, str]) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": data}  # fmt: skip
    kubectl.apply(json.dumps(manifest), "-n", namespace)


def wave_job(image: str) -> str:
    command = [
        "kubemigrate", "fleet-worker", "/migrations",
        "--targets-file", "/wave/targets", "--ledger", LEDGER, "--secret-key", "url",
        "--lock-wait", "5",
    ]  # fmt: skip
    container = {
        "name": "worker",
        "image": image,
        "command": command,
        "volumeMounts": [
            {"name": "migrations", "mountPath": "/migrations", "readOnly": True},
            {"name": "wave", "mountPath": "/wave", "readOnly": True},
        ],
    }
    volumes = [
        {"name": "migrations", "configMap": {"name": "wave-migrations"}},
        {"name": "wave", "configMap": {"name": "wave-targets"}},
    ]
    spec = {
        "restartPolicy": "Never",
        "serviceAccountName": SA,
        "automountServiceAccountToken": True,
        "containers": [container],
        "volumes": volumes,
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "wave"},
        "spec": {"parallelism": 2, "completions": 2, "backoffLimit": 0,
                 "template": {"spec": spec}},
    }  # fmt: skip
    return json.dumps(job)


def test_a_waves_job_pods_run_every_target_once(
    wave: Wave,
    kubectl: Kubectl,
    namespace: str,
    node_dir: Path,
    dev_image: LocalImage,
    tenant_urls: list[str],
    password_role: Callable[[str], str],
) -> None:
    role = password_role(PASSWORD)
    names = [f"tenant-{i}" for i in range(len(tenant_urls))]
    for name, url in zip(names, tenant_urls, strict=True):
        wave.secret(name, {"url": databases.with_user(url, role, PASSWORD)})
    wave.ledger(0, names)
    wave.rbac(names)
    config_map(kubectl, namespace, "wave-targets", {"targets": "\n".join(names)})
    config_map(
        kubectl,
        namespace,
        "wave-migrations",
        {
            "V1__items.sql": "SELECT pg_sleep(0.5);\nCREATE TABLE items (id int);",
            "V2__seed.sql": "INSERT INTO items VALUES (1), (2), (3);",
        },
    )

    kubectl.apply(wave_job(dev_image.name), "-n", namespace)

    def finished() -> dict[str, Any] | None:
        found = kubectl.json("get", "job", "wave", "-n", namespace)
        conditions = found.get("status", {}).get("conditions") or []
        done = {c["type"] for c in conditions if c["status"] == "True"}
        return found if done & {"Complete", "Failed"} else None

    job = wait_for(finished, timeout=180, what="the wave's Job to finish")
    logs = "".join(
        pod_log_path(node_dir, namespace, pod["metadata"]["name"]).read_text()
        for pod in kubectl.json("get", "pods", "-n", namespace, "-l", "job-name=wave")["items"]
    )
    assert job["status"].get("succeeded") == 2, logs
    ledger = wave.read_ledger()
    assert (ledger["next"], ledger["succeeded"], ledger["failed"]) == ("4", "0-3", ""), logs
    assert json.loads(ledger["versions"]) == {"2": 4} and ledger["rows"] == "12"
    ran = [json.loads(x)["name"] for x in logs.splitlines() if x.startswith("{")]
    assert sorted(ran) == names
    assert PASSWORD not in logs + json.dumps(ledger)


@pytest.fixture
def wave(kubectl: Kubectl, namespace: str, tmp_path: Path) -> Wave:
    return Wave(kubectl, namespace, tmp_path)
