"""A fleet wave set up by hand on the real cluster, for running ``kubemigrate fleet-worker``.

What the operator will make for a wave, made here with kubectl: tenant Secrets, the targets
file, the ledger ConfigMap, and a ServiceAccount whose Role names exactly the wave's Secrets and
its ledger. The worker runs as a subprocess with a ServiceAccount directory of its own (a token
minted with the TokenRequest API, the cluster's CA, the namespace), as a pod would have it.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from harness.kube import Kubectl
from integration.cli.cli_helpers import Result, start_cli

LEDGER = "wave-ledger"
SA = "wave-worker"


@dataclass
class Wave:
    """One wave in one namespace: its files and what the worker needs to run."""

    kubectl: Kubectl
    namespace: str
    workdir: Path

    def secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace},
            "data": encoded,
        }
        self.kubectl.apply(json.dumps(manifest))

    def ledger(self, budget: int, targets: Sequence[str]) -> None:
        """The targets file and a fresh ledger with this budget."""
        (self.workdir / "targets").write_text("\n".join(targets) + "\n", encoding="utf-8")
        data = {
            "next": "0",
            "budget": str(budget),
            "paused": "false",
            "running": "",
            "succeeded": "",
            "failed": "",
            "errors": "[]",
            "versions": "{}",
            "rows": "0",
        }
        manifest = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": LEDGER, "namespace": self.namespace},
            "data": data,
        }
        self.kubectl.apply(json.dumps(manifest))

    def read_ledger(self) -> dict[str, str]:
        found = self.kubectl.json("get", "configmap", LEDGER, "-n", self.namespace)
        data: dict[str, str] = found.get("data") or {}
        return data

    def service_account(self, secrets: Sequence[str]) -> Path:
        """The wave's ServiceAccount (``rbac``), and a directory as a pod mounts it: a token
        minted with the TokenRequest API, ca.crt, namespace."""
        self.rbac(secrets)
        ns = self.namespace
        token = self.kubectl.run("create", "token", SA, "-n", ns, "--duration=30m").stdout
        directory = self.workdir / "serviceaccount"
        directory.mkdir(exist_ok=True)
        (directory / "token").write_text(token.strip(), encoding="utf-8")
        (directory / "namespace").write_text(ns, encoding="utf-8")
        (directory / "ca.crt").write_bytes(self._ca())
        return directory

    def rbac(self, secrets: Sequence[str]) -> None:
        """The wave's ServiceAccount, Role (get on exactly these Secrets; get and update on the
        ledger) and RoleBinding."""
        rules = [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
             "resourceNames": list(secrets)},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update"],
             "resourceNames": [LEDGER]},
        ]  # fmt: skip
        ns = self.namespace
        objects: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": SA, "namespace": ns}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": SA, "namespace": ns}, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": SA, "namespace": ns},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SA},
             "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": ns}]},
        ]  # fmt: skip
        self.kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    def _cluster(self) -> dict[str, Any]:
        config = yaml.safe_load(self.kubectl.kubeconfig.read_text(encoding="utf-8"))
        cluster: dict[str, Any] = config["clusters"][0]["cluster"]
        return cluster

    def _ca(self) -> bytes:
        cluster = self._cluster()
        if "certificate-authority-data" in cluster:
            return base64.b64decode(cluster["certificate-authority-data"])
        return Path(cluster["certificate-authority"]).read_bytes()

    def env(self) -> dict[str, str]:
        """KUBERNETES_SERVICE_HOST/PORT as a pod has them, for the cluster's API server."""
        server = urlsplit(self._cluster()["server"])
        return {
            "KUBERNETES_SERVICE_HOST": server.hostname or "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(server.port or 443),
            # No kubeconfig: the worker must find the API server as a pod does.
            "KUBECONFIG": "/nonexistent",
        }

    def start(self, migrations: Path, sa_dir: Path, *args: str) -> subprocess.Popen[str]:
        return start_cli(
            "fleet-worker",
            str(migrations),
            "--targets-file",
            str(self.workdir / "targets"),
            "--ledger",
            LEDGER,
            "--service-account-dir",
            str(sa_dir),
            "--lock-wait",
            "5",
            *args,
            env=self.env(),
        )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> Result:
    stdout, stderr = proc.communicate(timeout=timeout)
    return Result(proc.returncode, stdout, stderr)


def lines(result: Result) -> list[dict[str, Any]]:
    """The worker's JSON lines (stdout holds nothing else)."""
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
