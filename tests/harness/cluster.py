"""The cluster a test session runs against, however it was found or started."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.kube import Kubectl


@dataclass(frozen=True)
class Cluster:
    """The cluster the tests run against, and whether it is our local one (with the node runner)."""

    kubeconfig: Path
    bin_dir: Path
    local: bool
    state_dir: Path | None

    @property
    def kubectl(self) -> Kubectl:
        return Kubectl(self.bin_dir / "kubectl", self.kubeconfig)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}",
        }
