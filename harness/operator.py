"""The kubemigrate operator as a subprocess of the tests, the way `make run` starts it.

A subprocess (not KopfRunner in a thread) so a test can kill it with SIGKILL mid-migration and
start it again, and read everything it logged to check that no password ever reached a log. The
Jobs it creates run from the project's image (localhost/kubemigrate:dev, `make image`), as the
chart's operator's do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.image.build import DEV_IMAGE
from harness.kube import wait_for
from harness.ports import free_port


class OperatorProcess:
    """One operator process watching one namespace, logging to a file."""

    def __init__(
        self, kubeconfig: Path, namespace: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.metrics_port = free_port()
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBEMIGRATE_METRICS_PORT": str(self.metrics_port),
            "KUBEMIGRATE_IMAGE": DEV_IMAGE,
            "KUBEMIGRATE_RETRY_MAX_SECONDS": "4",
            **self.extra_env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kopf",
                    "run",
                    "--standalone",
                    "--namespace",
                    self.namespace,
                    "-m",
                    "kubemigrate.controller.main",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        wait_for(
            lambda: "kubemigrate operator started" in self.text() or self._died(),
            timeout=30,
            what="the operator to start",
        )
        if self._died():
            raise AssertionError(f"the operator exited at start:\n{self.text()[-3000:]}")
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        time.sleep(0)
