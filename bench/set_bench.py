"""MigrationSet benchmark: a directory of 332 mixed migrations applied by the operator (ConfigMaps
and a MigrationSet created with `kubectl apply`, timed until Ready) against `kubemigrate apply`
of the same directory, in the same run, each on a fresh database; plus one Job's start-up (a
one-migration set, timed until Ready). Target (issue 12): the set is Ready within one Job
start-up plus twice the CLI's time.

    .venv/bin/python bench/set_bench.py [--count 332] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import databases, migset, stack  # noqa: E402
from harness.crds import install_crds  # noqa: E402
from harness.kube import Kubectl, wait_for  # noqa: E402
from harness.operator import OperatorProcess  # noqa: E402
from harness.paths import DEV_DIR  # noqa: E402

CLI = REPO / ".venv" / "bin" / "kubemigrate"


def ready(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kubectl.json("get", "migrationset", name, "-n", namespace)
    st = obj.get("status") or {}
    if st.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    if st.get("phase") == "Failed":
        raise RuntimeError(f"{name} failed: {st.get('message')}")
    conditions = {c["type"]: c["status"] for c in st.get("conditions") or []}
    return st if conditions.get("Ready") == "True" else None


def set_run(kubectl: Kubectl, s: stack.Stack, made: dict[str, str], tmp: Path) -> float:
    took, st = set_run_status(kubectl, s, made, tmp)
    run = st.get("lastRun") or {}
    print(
        f"  set of {len(made) // 2}: Ready in {took:.2f} s; the Job's run-set "
        f"{run.get('durationSeconds')} s; Job {run.get('job')}",
        file=sys.stderr,
    )
    return took


def set_run_status(
    kubectl: Kubectl, s: stack.Stack, made: dict[str, str], tmp: Path
) -> tuple[float, dict[str, Any]]:
    """Seconds from `kubectl apply` of the ConfigMaps and the set until the set is Ready."""
    namespace = f"bench-set-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    url = databases.create(s.database.url, "benchset")
    kubectl.run("create", "secret", "generic", "db", "-n", namespace, f"--from-literal=url={url}")
    wait_for(
        lambda: kubectl.run("get", "sa", "default", "-n", namespace, check=False).returncode == 0,
        timeout=30,
        what="the default ServiceAccount",
    )
    cms = migset.configmaps("app", made)
    the_set = {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "MigrationSet",
        "metadata": {"name": "app"},
        "spec": {
            "database": {"secretRef": {"name": "db"}},
            "source": {"configMaps": [{"name": c["metadata"]["name"]} for c in cms]},  # type: ignore[index]
        },
    }
    operator = OperatorProcess(s.kubeconfig, namespace, tmp / f"{namespace}.log")
    operator.start()
    try:
        start = time.perf_counter()
        kubectl.run(
            "apply",
            "--server-side",
            "-n",
            namespace,
            "-f",
            "-",
            input=yaml.safe_dump_all([*cms, the_set]),
        )
        st = wait_for(
            lambda: ready(kubectl, namespace, "app"), timeout=600, interval=0.1, what="Ready"
        )
        took = time.perf_counter() - start
    finally:
        operator.stop()
        kubectl.run("delete", "namespace", namespace, "--wait=false")
    databases.drop(s.database.url, url)
    return took, st


def cli_run(s: stack.Stack, directory: Path) -> float:
    url = databases.create(s.database.url, "benchcli")
    start = time.perf_counter()
    subprocess.run(
        [str(CLI), "apply", str(directory), "--database-url", url], check=True, capture_output=True
    )
    took = time.perf_counter() - start
    databases.drop(s.database.url, url)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=332)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    s = stack.up(DEV_DIR)
    kubectl = Kubectl(s.control_plane.bin_dir / "kubectl", s.kubeconfig)
    install_crds(kubectl)
    made = migset.files(args.count)
    one = migset.files(1)
    with tempfile.TemporaryDirectory(prefix="kubemigrate-setbench-") as tmp:
        directory = Path(tmp) / "migrations"
        migset.write(directory, args.count)
        cli, sets, startup = [], [], []
        for _ in range(args.runs):  # interleaved, so load from elsewhere hits both alike
            cli.append(cli_run(s, directory))
            sets.append(set_run(kubectl, s, made, Path(tmp)))
            startup.append(set_run(kubectl, s, one, Path(tmp)))
    c, m, j = statistics.median(cli), statistics.median(sets), statistics.median(startup)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"{args.count} migrations, median of {args.runs} (each on a fresh database)\n")
    print("| route | seconds (median) | runs |\n|---|---|---|")
    for route, value, values in (
        ("`kubemigrate apply DIR`", c, cli),
        ("MigrationSet, `kubectl apply` until Ready", m, sets),
        ("one Job start-up (a 1-migration set until Ready)", j, startup),
    ):
        print(f"| {route} | {value:.2f} | {', '.join(f'{x:.2f}' for x in values)} |")
    budget = j + 2 * c
    print(
        f"\nset / CLI: {m / c:.2f}x; target: set <= start-up + 2 x CLI = {budget:.2f} s: "
        f"{'met' if m <= budget else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
