"""Fleet benchmark (issue 14): a MigrationSet over 200 tenant databases x 20 migrations,
`maxParallel` 10, from `kubectl apply` until Ready, against a shell loop of `kubemigrate apply`
over the same number of databases with the same parallelism (`xargs -P 10`), in the same run,
each side on fresh databases; the same for 1,000 schemas in one database. The operator's RSS is
sampled during each rollout and compared between a small fleet and the full one. Targets: the
set within 1.5x of the loop, and the operator's RSS flat in the number of targets.

    .venv/bin/python bench/fleet_bench.py [--tenants 200] [--count 20] [--parallel 10]
        [--schemas 1000] [--small 50] [--loop-only]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import databases, migset, stack, tenants  # noqa: E402
from harness.crds import install_crds  # noqa: E402
from harness.kube import Kubectl, wait_for  # noqa: E402
from harness.operator import OperatorProcess  # noqa: E402
from harness.paths import DEV_DIR  # noqa: E402

CLI = REPO / ".venv" / "bin" / "kubemigrate"
TARGET_RATIO = 1.5


@dataclass(frozen=True)
class Rollout:
    """One operator-side run: seconds until Ready and the operator's RSS (MiB) over it."""

    seconds: float
    idle_mib: float
    peak_mib: float
    waves: int


class RssSampler:
    """Samples a process's resident set size from /proc every interval seconds, in a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss_mib(self) -> float | None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        line = next(x for x in text.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            value = self.rss_mib()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ready(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kubectl.json("get", "migrationset", name, "-n", namespace)
    st = obj.get("status") or {}
    if st.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    if st.get("phase") in ("Failed", "Halted"):
        raise RuntimeError(f"{name} {st['phase']}: {st.get('message')} {st.get('failedTargets')}")
    conditions = {c["type"]: c["status"] for c in st.get("conditions") or []}
    return st if conditions.get("Ready") == "True" else None


@contextmanager
def bench_namespace(kubectl: Kubectl) -> Iterator[str]:
    namespace = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    wait_for(
        lambda: kubectl.run("get", "sa", "default", "-n", namespace, check=False).returncode == 0,
        timeout=30,
        what="the default ServiceAccount",
    )
    try:
        yield namespace
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false")


def the_set(cms: list[dict[str, Any]], targets: dict[str, Any], parallel: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "MigrationSet",
        "metadata": {"name": "orders"},
        "spec": {
            "targets": targets,
            "source": {"configMaps": [{"name": c["metadata"]["name"]} for c in cms]},
            "rollout": {"maxParallel": parallel},
        },
    }


@dataclass(frozen=True)
class Bench:
    """What every route of a run shares."""

    kubectl: Kubectl
    stack: stack.Stack
    made: dict[str, str]
    directory: Path
    parallel: int
    tmp: Path

    @property
    def count(self) -> int:
        return len(self.made) // 2


def operator_rollout(b: Bench, namespace: str, targets: dict[str, Any]) -> Rollout:
    """Start an operator for namespace, then time `kubectl apply` of the ConfigMaps and the set
    until Ready while sampling the operator's RSS."""
    cms = migset.configmaps("orders", b.made)
    manifest = yaml.safe_dump_all([*cms, the_set(cms, targets, b.parallel)])
    operator = OperatorProcess(b.stack.kubeconfig, namespace, b.tmp / f"{namespace}.log")
    operator.start()
    assert operator.proc is not None
    try:
        time.sleep(2)  # settle kopf's start-up before the idle sample
        with RssSampler(operator.proc.pid) as rss:
            idle = rss.rss_mib() or 0.0
            start = time.perf_counter()
            b.kubectl.run("apply", "--server-side", "-n", namespace, "-f", "-", input=manifest)
            st = wait_for(
                lambda: ready(b.kubectl, namespace, "orders"),
                timeout=3600,
                interval=0.5,
                what="Ready",
            )
            took = time.perf_counter() - start
    finally:
        operator.stop()
    return Rollout(took, idle, max(rss.samples, default=idle), int(st.get("wave") or 0) + 1)


def applied_count(url: str, schema: str) -> int:
    """Distinct versions successfully applied in the history in schema."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT count(DISTINCT version) FROM {}.history "
                "WHERE kind = 'apply' AND status = 'success'"
            ).format(sql.Identifier(schema))
        ).fetchone()
    return int(row[0]) if row else 0


def check(b: Bench, pairs: list[tuple[str, str]]) -> None:
    """Every (url, history schema) holds every version applied: the run really happened."""
    for url, schema in pairs:
        n = applied_count(url, schema)
        if n != b.count:
            raise RuntimeError(f"{url.rsplit('/', 1)[-1]} {schema}: {n} of {b.count} applied")


def xargs_loop(words: list[str], per: int, command: str, parallel: int) -> float:
    """Seconds for `xargs -P parallel -n per command` over words (per words to each run)."""
    start = time.perf_counter()
    subprocess.run(
        ["bash", "-c", f"xargs -P {parallel} -n {per} {command} >/dev/null"],
        input="\n".join(words) + "\n",
        text=True,
        check=True,
    )
    return time.perf_counter() - start


def new_fleet(b: Bench, n: int, tag: str) -> list[tenants.Tenant]:
    names = tenants.tenant_names(n)
    return tenants.create_databases(b.stack.database.url, names, f"{tag}{uuid.uuid4().hex[:6]}")


def loop_databases(b: Bench, n: int) -> float:
    fleet = new_fleet(b, n, "bfl")
    try:
        command = f"{CLI} apply {b.directory} --database-url"
        took = xargs_loop([t.url for t in fleet], 1, command, b.parallel)
        check(b, [(t.url, "kubemigrate") for t in fleet])
    finally:
        tenants.drop_databases(b.stack.database.url, fleet)
    return took


def operator_databases(b: Bench, n: int) -> Rollout:
    fleet = new_fleet(b, n, "bfo")
    try:
        with bench_namespace(b.kubectl) as namespace:
            for start in range(0, n, 100):  # one kubectl apply per 100 Secrets
                chunk = yaml.safe_dump_all(tenants.secrets(fleet[start : start + 100]))
                b.kubectl.run("apply", "-n", namespace, "-f", "-", input=chunk)
            targets = {"secretSelector": {"matchLabels": dict(tenants.SECRET_LABEL)}}
            run = operator_rollout(b, namespace, targets)
        check(b, [(t.url, "kubemigrate") for t in fleet])
    finally:
        tenants.drop_databases(b.stack.database.url, fleet)
    return run


PICK = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' ORDER BY 1"


def loop_schemas(b: Bench, n: int) -> float:
    url = databases.create(b.stack.database.url, "bfls")
    names = tenants.schema_names(n)
    try:
        tenants.create_schemas(url, names)
        words = [w for x in names for w in (tenants.schema_url(url, x), x)]
        apply = f'{CLI} apply {b.directory} --database-url "$0" --history-schema "$1"'
        took = xargs_loop(words, 2, f"sh -c '{apply}'", b.parallel)
        check(b, [(url, x) for x in names])
    finally:
        databases.drop(b.stack.database.url, url)
    return took


def operator_schemas(b: Bench, n: int) -> Rollout:
    url = databases.create(b.stack.database.url, "bfos")
    names = tenants.schema_names(n)
    try:
        tenants.create_schemas(url, names)
        with bench_namespace(b.kubectl) as namespace:
            shared = ["secret", "generic", "shared", "-n", namespace, f"--from-literal=url={url}"]
            b.kubectl.run("create", *shared)
            targets = {"schemas": {"database": {"secretRef": {"name": "shared"}}, "query": PICK}}
            run = operator_rollout(b, namespace, targets)
        check(b, [(url, x) for x in names])
    finally:
        databases.drop(b.stack.database.url, url)
    return run


def row(route: str, n: int, seconds: float, loop: float | None, run: Rollout | None) -> str:
    ratio = f"{seconds / loop:.2f}x" if loop else ""
    rss = f"{run.idle_mib:.0f} / {run.peak_mib:.0f}" if run else ""
    waves = str(run.waves) if run else ""
    return f"| {route} | {n} | {seconds:.1f} | {ratio} | {rss} | {waves} |"


def ratio_verdict(what: str, seconds: float, loop: float) -> str:
    ratio = seconds / loop
    met = "met" if ratio <= TARGET_RATIO else "NOT met"
    return f"{what}: set / loop {ratio:.2f}x; target <= {TARGET_RATIO}x: {met}"


def rss_verdict(small: Rollout, n_small: int, big: Rollout, n_big: int) -> str:
    growth = (big.peak_mib - big.idle_mib) - (small.peak_mib - small.idle_mib)
    flat = "flat" if growth <= 0.1 * small.peak_mib else "NOT flat"
    return (
        f"operator RSS: peak {small.peak_mib:.0f} MiB at {n_small} targets, "
        f"{big.peak_mib:.0f} MiB at {n_big}; growth over idle differs by {growth:+.0f} MiB: {flat}"
    )


LOOP = "`xargs -P` loop of `kubemigrate apply`"


def databases_routes(b: Bench, args: argparse.Namespace, rows: list[str]) -> list[str]:
    """The database-per-tenant routes; their rows go in rows, their verdicts are returned."""
    loop = loop_databases(b, args.tenants)
    print(f"  loop over {args.tenants} databases: {loop:.1f} s", file=sys.stderr)
    rows.append(row(f"{LOOP}, databases", args.tenants, loop, None, None))
    if args.loop_only:
        return []
    big = operator_databases(b, args.tenants)
    print(f"  set over {args.tenants} databases: {big}", file=sys.stderr)
    rows.append(row("MigrationSet, databases", args.tenants, big.seconds, loop, big))
    verdicts = [ratio_verdict("databases", big.seconds, loop)]
    if args.small:
        small = operator_databases(b, args.small)
        print(f"  set over {args.small} databases: {small}", file=sys.stderr)
        rows.append(row("MigrationSet, databases", args.small, small.seconds, None, small))
        verdicts.append(rss_verdict(small, args.small, big, args.tenants))
    return verdicts


def schemas_routes(b: Bench, args: argparse.Namespace, rows: list[str]) -> list[str]:
    """The schema-per-tenant routes; their rows go in rows, their verdicts are returned."""
    if not args.schemas:
        return []
    loop = loop_schemas(b, args.schemas)
    print(f"  loop over {args.schemas} schemas: {loop:.1f} s", file=sys.stderr)
    rows.append(row(f"{LOOP}, schemas", args.schemas, loop, None, None))
    if args.loop_only:
        return []
    run = operator_schemas(b, args.schemas)
    print(f"  set over {args.schemas} schemas: {run}", file=sys.stderr)
    rows.append(row("MigrationSet, schemas", args.schemas, run.seconds, loop, run))
    return [ratio_verdict("schemas", run.seconds, loop)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200, help="tenant databases")
    parser.add_argument("--count", type=int, default=20, help="migrations")
    parser.add_argument("--parallel", type=int, default=10, help="maxParallel and xargs -P")
    parser.add_argument("--schemas", type=int, default=1000, help="schemas (0: skip)")
    parser.add_argument("--small", type=int, default=50, help="the small fleet for RSS (0: skip)")
    parser.add_argument("--loop-only", action="store_true", help="only the kubemigrate loops")
    args = parser.parse_args()
    s = stack.up(DEV_DIR)
    kubectl = Kubectl(s.control_plane.bin_dir / "kubectl", s.kubeconfig)
    install_crds(kubectl)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kubemigrate-fleetbench-") as tmp_name:
        tmp = Path(tmp_name)
        made = migset.write(tmp / "migrations", args.count)
        b = Bench(kubectl, s, made, tmp / "migrations", args.parallel, tmp)
        verdicts = databases_routes(b, args, rows) + schemas_routes(b, args, rows)
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {python}")
    print(f"{args.count} migrations a target, parallelism {args.parallel}, fresh databases each\n")
    print("| route | targets | seconds | vs loop | operator RSS MiB (idle / peak) | waves |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    if verdicts:
        print("\n" + "\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
