"""Fixtures for tests against a real cluster: session-wide cluster, a namespace per test."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from harness import controlplane, stack
from harness.crds import install_crds
from harness.image import build
from harness.image.store import LocalImage
from harness.kube import Cluster, Kubectl, api_client, wait_for
from harness.paths import DEV_DIR


def _dev_cluster() -> Cluster | None:
    cp = controlplane.load(DEV_DIR)
    if cp and cp.running() and cp.ready() and stack.status(DEV_DIR)[stack.NODE_RUNNER]:
        return Cluster(cp.kubeconfig, cp.bin_dir, True, DEV_DIR)
    return None


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """--kubeconfig/KUBECONFIG if given, else .dev's stack if up, else one started for the run."""
    given = request.config.getoption("--kubeconfig") or os.environ.get("KUBECONFIG")
    if given:
        yield Cluster(Path(given), controlplane.build_tools(), False, None)
        return
    dev = _dev_cluster()
    if dev:
        yield dev
        return
    with tempfile.TemporaryDirectory(prefix="kubemigrate-cluster-") as tmp:
        state = Path(tmp)
        s = stack.up(state)
        try:
            yield Cluster(s.kubeconfig, s.control_plane.bin_dir, True, state)
        finally:
            stack.down(state)


@pytest.fixture(scope="session")
def kube_api(cluster: Cluster) -> kubernetes.client.ApiClient:
    return api_client(cluster.kubeconfig)


@pytest.fixture
def kubectl(cluster: Cluster) -> Kubectl:
    return cluster.kubectl


@pytest.fixture
def namespace(cluster: Cluster, kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    # Pods need the namespace's default ServiceAccount, made by the controller manager.
    wait_for(
        lambda: (
            kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0
        ),
        timeout=30,
        what=f"serviceaccount default in {name}",
    )
    try:
        yield name
    finally:
        release_finalizers(kubectl, name)
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


OUR_KINDS = ",".join(
    f"{plural}.kubemigrate.dev"
    for plural in (
        "migrations",
        "databasebackups",
        "databaserestores",
        "databasebackupschedules",
    )
)


def release_finalizers(kubectl: Kubectl, namespace: str) -> None:
    """Drop the operator's finalizers: its process is gone by now (its fixture ends first), and
    without it a namespace full of finalized objects would stay Terminating for ever, keeping
    the API server busy for the rest of the run."""
    found = kubectl.run("get", OUR_KINDS, "-n", namespace, "-o", "name", check=False)
    for obj in found.stdout.split():
        kubectl.run(
            "patch",
            obj,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> list[str]:
    """The names of the project's CRDs, installed or updated from crds/ once per session."""
    return install_crds(cluster.kubectl)


@pytest.fixture(scope="session")
def dev_image() -> LocalImage:
    """The project's image, localhost/kubemigrate:dev, which in-cluster pods run: built (as by
    `make image`) when it is missing or was built from other sources than the checkout's."""
    return build.ensure()
