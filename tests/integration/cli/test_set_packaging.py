"""The three ways docs/gitops.md gives to ship migrations/set as a MigrationSet (kubemigrate
manifests, kustomize's configMapGenerator, a Helm chart's .Files.Glob) rendered by the real
tools: each ConfigMap holds the directory's files byte for byte, and the MigrationSet names it."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from harness.kube import Cluster
from harness.paths import REPO
from integration.cli.cli_helpers import run_cli

EXAMPLE = REPO / "migrations" / "set"


def _tool(cluster: Cluster, *args: str) -> str:
    proc = subprocess.run(
        [str(cluster.bin_dir / args[0]), *args[1:]],
        env=cluster.env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def rendered(way: str, cluster: Cluster) -> list[dict[str, Any]]:
    if way == "manifests":
        result = run_cli(
            "manifests", str(EXAMPLE / "sql"), "--name", "orders", "--secret", "orders-db"
        )
        assert result.returncode == 0, result
        text = result.stdout
    elif way == "kustomize":
        text = _tool(cluster, "kubectl", "kustomize", str(EXAMPLE))
    else:
        text = _tool(cluster, "helm", "template", "orders", str(EXAMPLE))
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("way", ["manifests", "kustomize", "helm"])
def test_each_way_ships_the_directory_byte_for_byte(way: str, cluster: Cluster) -> None:
    documents = rendered(way, cluster)
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["ConfigMap", "MigrationSet"]
    configmap = next(d for d in documents if d["kind"] == "ConfigMap")
    migration_set = next(d for d in documents if d["kind"] == "MigrationSet")
    files = {p.name: p.read_text() for p in (EXAMPLE / "sql").iterdir()}
    assert configmap["data"] == files
    assert configmap["immutable"] is True
    name = configmap["metadata"]["name"]
    assert name.startswith("orders-migrations-") and name != "orders-migrations"
    assert migration_set["spec"]["source"] == {"configMaps": [{"name": name}]}
    assert migration_set["spec"]["database"] == {"secretRef": {"name": "orders-db", "key": "url"}}
