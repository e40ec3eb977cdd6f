"""The project's CRDs, installed once per session into the test cluster."""

from __future__ import annotations

import pytest

from harness.crds import install_crds
from harness.kube import Cluster


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> list[str]:
    """The names of the installed CRDs (installed or updated from crds/ at first use)."""
    return install_crds(cluster.kubectl)
