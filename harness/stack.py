"""The whole local stack: control plane, PostgreSQL and the node runner, up or down as one.

`make dev-up` runs it on `.dev/`; the test session runs it on a temporary directory when no
cluster is up. Bringing it up again reuses every part that is running and healthy.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import controlplane, postgres, processes
from harness.devenv import write_env
from harness.paths import PG_BIN, REPO

NODE_RUNNER = "node-runner"


@dataclass(frozen=True)
class Stack:
    """What a running stack offers its users."""

    state_dir: Path
    control_plane: controlplane.ControlPlane
    database: postgres.PostgresServer

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @property
    def env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "DATABASE_URL": self.database.url,
            "KUBEMIGRATE_DEV_DIR": str(self.state_dir),
            "PATH": f"{self.control_plane.bin_dir}:{os.environ.get('PATH', '')}",
        }


def node_path(bin_dir: Path) -> str:
    """PATH for pod processes: the project's venv (the image's CLI), PostgreSQL tools, kubectl."""
    return ":".join(
        [
            str(REPO / ".venv" / "bin"),
            str(PG_BIN),
            str(bin_dir),
            "/usr/local/bin",
            "/usr/bin",
            "/bin",
        ]
    )


def runas_path(bin_dir: Path) -> Path:
    """The runas helper harness/cluster/build.sh built beside the control plane (named by its
    source's hash, so a changed helper is rebuilt)."""
    source = REPO / "harness" / "cluster" / "cmd" / "runas" / "main.go"
    return bin_dir / f"runas-{hashlib.sha256(source.read_bytes()).hexdigest()[:12]}"


def _start_node_runner(state_dir: Path, cp: controlplane.ControlPlane) -> None:
    if processes.read_pid(state_dir / f"{NODE_RUNNER}.pid"):
        return
    if not runas_path(cp.bin_dir).exists():
        controlplane.build_tools()  # a checkout newer than the running control plane's build
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["KUBECONFIG"] = str(cp.kubeconfig)
    processes.spawn(
        NODE_RUNNER,
        [
            sys.executable,
            "-m",
            "harness.node.runner",
            "--kubeconfig",
            str(cp.kubeconfig),
            "--state-dir",
            str(state_dir / "node"),
            "--path",
            node_path(cp.bin_dir),
            "--runas",
            str(runas_path(cp.bin_dir)),
        ],
        state_dir,
        env=env,
    )
    time.sleep(0.5)
    if not processes.read_pid(state_dir / f"{NODE_RUNNER}.pid"):
        log = state_dir / "logs" / f"{NODE_RUNNER}.log"
        raise RuntimeError(f"node runner exited at start:\n{log.read_text()[-3000:]}")


def up(state_dir: Path) -> Stack:
    """Start (or reuse) everything and write state_dir/env."""
    state_dir.mkdir(parents=True, exist_ok=True)
    db = postgres.start(state_dir / "postgres")
    cp = controlplane.start(state_dir)
    _start_node_runner(state_dir, cp)
    stack = Stack(state_dir, cp, db)
    write_env(stack.env, state_dir)
    return stack


def down(state_dir: Path) -> None:
    """Stop everything up() started in state_dir; data stays for the next up()."""
    processes.stop(NODE_RUNNER, state_dir)
    controlplane.stop(state_dir)
    postgres.stop(state_dir / "postgres")
    (state_dir / "env").unlink(missing_ok=True)


def status(state_dir: Path) -> dict[str, bool]:
    """Which parts are running."""
    cp = controlplane.load(state_dir)
    return {
        "postgres": postgres.running(state_dir / "postgres") is not None,
        **{
            c: processes.read_pid(state_dir / f"{c}.pid") is not None
            for c in controlplane.COMPONENTS
        },
        "api-ready": bool(cp and cp.ready()),
        NODE_RUNNER: processes.read_pid(state_dir / f"{NODE_RUNNER}.pid") is not None,
    }
