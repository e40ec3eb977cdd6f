"""etcd, kube-apiserver and kube-controller-manager as local processes on loopback.

The binaries come from harness/cluster/ (built from Go modules, cached outside the repo). The
apiserver uses a bearer token for an admin in system:masters, RBAC authorization, and a
self-signed serving certificate; the controller manager runs the real Job, garbage-collector,
namespace and ServiceAccount controllers against it.
"""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness import processes
from harness.paths import BUILD_TOOLS
from harness.ports import free_port, is_listening

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")


def build_tools() -> Path:
    """Build (or find cached) binaries; return their directory."""
    out = subprocess.run([str(BUILD_TOOLS)], check=True, text=True, capture_output=True)
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane: where its state is and how to reach it."""

    state_dir: Path
    bin_dir: Path
    api_port: int
    token: str

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """GET a path on the API server as admin."""
        req = urllib.request.Request(  # noqa: S310 (https only)
            self.server + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            cafile = self.state_dir / "pki" / "apiserver.crt"
            ctx = ssl.create_default_context(cafile=str(cafile))
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:  # noqa: S310
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            with e:  # it holds the response's socket: a ResourceWarning when collected
                return e.code, e.read().decode()
        except (OSError, ssl.SSLError) as e:
            return 0, str(e)

    def ready(self) -> bool:
        """/readyz answers ok and the ServiceAccount controller has made `default/default`."""
        code, _ = self.get("/readyz")
        if code != 200:
            return False
        code, _ = self.get("/api/v1/namespaces/default/serviceaccounts/default")
        return code == 200

    def running(self) -> bool:
        return all(processes.read_pid(self.state_dir / f"{c}.pid") for c in COMPONENTS)


def _state_file(state_dir: Path) -> Path:
    return state_dir / "controlplane.json"


def load(state_dir: Path) -> ControlPlane | None:
    """The control plane recorded in state_dir, if any (running or not)."""
    path = _state_file(state_dir)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return ControlPlane(state_dir, Path(data["bin_dir"]), data["api_port"], data["token"])


def _pki(state_dir: Path) -> Path:
    pki = state_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    sa_key = pki / "sa.key"
    if not sa_key.exists():
        subprocess.run(
            ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(sa_key)],
            check=True,
            capture_output=True,
        )
    return pki


def _write_kubeconfig(cp: ControlPlane) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": cp.server,
                    "certificate-authority": str(cp.state_dir / "pki" / "apiserver.crt"),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": cp.token}}],
        "contexts": [
            {
                "name": "local",
                "context": {"cluster": "local", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "local",
    }
    cp.kubeconfig.write_text(yaml.safe_dump(config))
    cp.kubeconfig.chmod(0o600)


def _wait(what: str, check: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s; last log lines:\n{tail}")


def start(state_dir: Path, bin_dir: Path | None = None) -> ControlPlane:
    """Start the three components in state_dir, reusing a healthy running set."""
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = load(state_dir)
    if existing and existing.running() and existing.ready():
        return existing
    stop(state_dir)
    bin_dir = bin_dir or build_tools()
    pki = _pki(state_dir)
    token = existing.token if existing else secrets.token_hex(16)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    cp = ControlPlane(state_dir, bin_dir, api_port, token)
    (state_dir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    logs = state_dir / "logs"

    processes.spawn(
        "etcd",
        [
            str(bin_dir / "etcd"),
            "--name",
            "default",
            "--data-dir",
            str(state_dir / "etcd"),
            "--listen-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes",
            str(4 * 1024**3),
            "--log-level",
            "warn",
        ],
        state_dir,
    )
    _wait("etcd", lambda: is_listening(etcd_port), 30, logs / "etcd.log")

    sa_key = str(pki / "sa.key")
    processes.spawn(
        "kube-apiserver",
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            f"--secure-port={api_port}",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={pki}",
            f"--token-auth-file={state_dir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=0",
        ],
        state_dir,
    )
    _wait("kube-apiserver", lambda: cp.get("/readyz")[0] == 200, 120, logs / "kube-apiserver.log")
    _write_kubeconfig(cp)

    processes.spawn(
        "kube-controller-manager",
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={cp.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={pki / 'apiserver.crt'}",
            "--use-service-account-credentials=false",
            "--v=0",
        ],
        state_dir,
    )
    _state_file(state_dir).write_text(
        json.dumps({"bin_dir": str(bin_dir), "api_port": api_port, "token": token})
    )
    _wait("kube-controller-manager", cp.ready, 120, logs / "kube-controller-manager.log")
    return cp


def stop(state_dir: Path) -> None:
    """Stop the components, newest first."""
    for name in reversed(COMPONENTS):
        processes.stop(name, state_dir)
