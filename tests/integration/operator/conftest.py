"""Fixtures for the operator's end-to-end tests: CRDs, a database Secret, a running operator."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import tenants
from harness.image.store import LocalImage
from harness.kube import Cluster, Kubectl
from harness.operator import OperatorProcess


@pytest.fixture
def db_secret(kubectl: Kubectl, namespace: str, database_url: str, crds: list[str]) -> str:
    """A Secret `db` (key `url`) in the test namespace pointing at the test's database."""
    kubectl.run(
        "create", "secret", "generic", "db", "-n", namespace, f"--from-literal=url={database_url}"
    )
    return "db"


@pytest.fixture
def start_operator(
    cluster: Cluster, namespace: str, tmp_path: Path, crds: list[str], dev_image: LocalImage
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operators on demand (a test may kill one and start another); all stopped after.
    Their Jobs run from dev_image."""
    started: list[OperatorProcess] = []

    def start(**env: str) -> OperatorProcess:
        op = OperatorProcess(cluster.kubeconfig, namespace, tmp_path / "operator.log", env)
        started.append(op.start())
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()


@pytest.fixture
def tenant_databases(pg_admin_url: str) -> Iterator[Callable[..., list[tenants.Tenant]]]:
    """Make tenant databases on demand (``make(30)``: tenant-000..tenant-029, each a fresh empty
    database); all dropped after the test."""
    made: list[tenants.Tenant] = []

    def make(count: int, prefix: str = "tenant") -> list[tenants.Tenant]:
        tag = f"f{uuid.uuid4().hex[:8]}"
        fleet = tenants.create_databases(pg_admin_url, tenants.tenant_names(count, prefix), tag)
        made.extend(fleet)
        return fleet

    yield make
    tenants.drop_databases(pg_admin_url, made)
