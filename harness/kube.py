"""Talking to the test cluster: which cluster it is, a kubectl runner bound to its kubeconfig, and
API clients."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes


@dataclass(frozen=True)
class Kubectl:
    """The real kubectl binary, pointed at one cluster."""

    binary: Path
    kubeconfig: Path

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(
        self, manifest: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", *args, input=manifest, check=check)


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


def api_client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    """A kubernetes-client ApiClient for kubeconfig (not the global default configuration)."""
    # kubernetes.config is not annotated (unlike the client's API classes).
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return client


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60,
    interval: float = 0.2,
    what: str = "condition",
) -> Any:
    """Poll predicate until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
