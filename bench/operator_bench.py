"""Operator benchmarks on the local cluster: apply-to-Ready latency, and 500 Migrations at once.

Latency: one trivial Migration at a time (each a new version on one database), timed from the
create call to the API server until a watch sees `Ready=True` for its generation; p50 and p95
over N runs, once with the preflight Job and once without. Scale: N Migrations of one database
created at once (preflight off), timed until all are Ready, with the operator's peak RSS
(VmHWM). The operator runs as its own process, as `make run` starts it, against the stack
`.dev/` describes (started if it is not up).

    .venv/bin/python bench/operator_bench.py [--runs 50] [--scale 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kubernetes  # noqa: E402

from harness import databases, stack  # noqa: E402
from harness.crds import install_crds  # noqa: E402
from harness.kube import Kubectl, api_client  # noqa: E402
from harness.operator import OperatorProcess  # noqa: E402
from harness.paths import DEV_DIR  # noqa: E402

GROUP, VERSION, PLURAL = "kubemigrate.dev", "v1alpha1", "migrations"


def manifest(name: str, version: int, *, preflight: bool) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Migration",
        "metadata": {"name": name},
        "spec": {
            "database": {"secretRef": {"name": "db"}},
            "version": str(version),
            "sql": f"CREATE TABLE t_{version} (id int);",
            "preflight": {"enabled": preflight},
        },
    }


def ready(obj: dict[str, Any]) -> bool:
    st = obj.get("status") or {}
    if st.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []
    )


class Bench:
    """A namespace, a database Secret and an operator for one measurement."""

    def __init__(self, s: stack.Stack, tmp: Path) -> None:
        self.stack, self.tmp = s, tmp
        client = api_client(s.kubeconfig)
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.namespace = f"bench-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace({"metadata": {"name": self.namespace}})
        self.db = databases.create(s.database.url, "bench")
        self.core.create_namespaced_secret(
            self.namespace, {"metadata": {"name": "db"}, "stringData": {"url": self.db}}
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # pods need the default ServiceAccount
            if self.core.list_namespaced_service_account(self.namespace).items:
                break
            time.sleep(0.1)
        self.operator = OperatorProcess(s.kubeconfig, self.namespace, tmp / f"{self.namespace}.log")
        self.operator.start()

    def create(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def wait_ready(self, names: set[str], timeout: float) -> float:
        """Seconds until every named Migration is Ready, seen through a watch."""
        start = time.perf_counter()
        pending = set(names)
        watch = kubernetes.watch.Watch()
        listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        pending -= {o["metadata"]["name"] for o in listing["items"] if ready(o)}
        version = listing["metadata"]["resourceVersion"]
        while pending:
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{len(pending)} not Ready after {timeout}s")
            for event in watch.stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=version,
                timeout_seconds=10,
            ):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if ready(obj):
                    pending.discard(obj["metadata"]["name"])
                if not pending:
                    watch.stop()
                    break
        return time.perf_counter() - start

    def peak_rss_mb(self) -> float:
        assert self.operator.proc is not None
        for line in Path(f"/proc/{self.operator.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.operator.stop()
        self.core.delete_namespace(self.namespace)
        databases.drop(self.stack.database.url, self.db)


def latency(b: Bench, runs: int, *, preflight: bool, first_version: int) -> list[float]:
    times = []
    for i in range(runs):
        version = first_version + i
        name = f"m-{version}"
        start = time.perf_counter()
        b.create(manifest(name, version, preflight=preflight))
        b.wait_ready({name}, timeout=120)
        times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--scale", type=int, default=500)
    args = parser.parse_args()
    s = stack.up(DEV_DIR)
    install_crds(Kubectl(s.control_plane.bin_dir / "kubectl", s.kubeconfig))
    rows = []
    with tempfile.TemporaryDirectory(prefix="kubemigrate-bench-") as tmp:
        for preflight in (True, False):
            b = Bench(s, Path(tmp))
            try:
                latency(b, 2, preflight=preflight, first_version=1)  # warm-up
                times = latency(b, args.runs, preflight=preflight, first_version=10)
            finally:
                b.close()
            rows.append((preflight, statistics.median(times), percentile(times, 95)))
        b = Bench(s, Path(tmp))
        try:
            names = {f"m-{i}" for i in range(1, args.scale + 1)}
            start = time.perf_counter()
            for i in range(1, args.scale + 1):
                b.create(manifest(f"m-{i}", i, preflight=False))
            created = time.perf_counter() - start
            total = created + b.wait_ready(names, timeout=1800)
            rss = b.peak_rss_mb()
        finally:
            b.close()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print("| preflight Job | p50 (s) | p95 (s) | runs |\n|---|---|---|---|")
    for preflight, p50, p95 in rows:
        print(f"| {'with' if preflight else 'without'} | {p50:.3f} | {p95:.3f} | {args.runs} |")
    print(
        f"\n{args.scale} Migrations created at once: all Ready in {total:.1f} s "
        f"(creating them took {created:.1f} s); operator peak RSS {rss:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
