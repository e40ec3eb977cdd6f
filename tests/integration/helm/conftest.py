"""The helm fixture: the binary `make tools` built, bound to the test cluster."""

from __future__ import annotations

import pytest

from harness.kube import Cluster
from integration.helm.helm_helpers import Helm


@pytest.fixture(scope="session")
def helm(cluster: Cluster) -> Helm:
    return Helm(cluster.bin_dir / "helm", cluster)
