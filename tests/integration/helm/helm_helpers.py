"""Running the Helm binary `make tools` built (beside kubectl) against the test cluster."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.kube import Cluster
from harness.paths import REPO

CHART = REPO / "helm" / "kubemigrate"


@dataclass(frozen=True)
class Helm:
    """helm, run against the test cluster's kubeconfig."""

    binary: Path
    cluster: Cluster

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            env=self.cluster.env,
            text=True,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def template(self, *args: str, release: str = "kubemigrate", namespace: str = "default") -> str:
        """The chart rendered offline, for the oldest Kubernetes its default values support
        (1.30: the ValidatingAdmissionPolicy API)."""
        return self.run(
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            "1.30.0",
            *args,
        ).stdout
