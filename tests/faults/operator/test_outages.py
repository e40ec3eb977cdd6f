"""PostgreSQL stopped for 30 s and the kube-apiserver stopped for 60 s in the middle of a run of
migrations: everything finishes by itself once they are back, each migration applied exactly
once, and the time from the restart to the last migration's Succeeded is measured.

These run on a stack of their own (control plane, node runner and PostgreSQL in a temporary
directory), since they stop its parts."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.operator.figures import record, seconds
from faults.operator.storm import execute
from harness import controlplane, databases, postgres, processes, stack
from harness.crds import install_crds
from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import migration, query, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.full, pytest.mark.timeout(900)]

PG_OUTAGE = 30.0
API_OUTAGE = 60.0
RECOVERY_BOUND = 180.0


@pytest.fixture(scope="module")
def own_stack() -> Iterator[stack.Stack]:
    with tempfile.TemporaryDirectory(prefix="kubemigrate-faults-") as tmp:
        s = stack.up(Path(tmp))
        try:
            yield s
        finally:
            stack.down(Path(tmp))


@pytest.fixture
def setup(own_stack: stack.Stack, tmp_path: Path) -> Iterator[tuple[Kubectl, str, str]]:
    """A namespace, a database with a Secret `db`, and an operator, on the stack."""
    kubectl = Kubectl(own_stack.control_plane.bin_dir / "kubectl", own_stack.kubeconfig)
    install_crds(kubectl)
    namespace = f"f-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    wait_for(
        lambda: kubectl.run("get", "sa", "default", "-n", namespace, check=False).returncode == 0,
        timeout=30,
        what="the default ServiceAccount",
    )
    url = databases.create(own_stack.database.url)
    kubectl.run("create", "secret", "generic", "db", "-n", namespace, f"--from-literal=url={url}")
    execute(url, "CREATE TABLE applied_log (version text NOT NULL)")
    op = OperatorProcess(own_stack.kubeconfig, namespace, tmp_path / "operator.log").start()
    try:
        yield kubectl, namespace, url
    finally:
        op.stop()


def _chain(kubectl: Kubectl, namespace: str, versions: range, sleep: float) -> None:
    docs = [
        migration(
            f"m{v}",
            str(v),
            f"SELECT pg_sleep({sleep});\nINSERT INTO applied_log VALUES ('{v}');",
        )
        for v in versions
    ]
    kubectl.apply("---\n".join(docs), "-n", namespace)


def _all_succeeded(kubectl: Kubectl, namespace: str, versions: range) -> None:
    for v in versions:
        wait_phase(kubectl, namespace, f"m{v}", "Succeeded", timeout=RECOVERY_BOUND)


def _exactly_once(url: str, versions: range) -> None:
    rows = dict(query(url, "SELECT version, count(*) FROM applied_log GROUP BY version"))
    assert rows == {str(v): 1 for v in versions}, rows
    history = query(
        url,
        "SELECT version, count(*) FROM kubemigrate.history WHERE kind = 'apply' "
        "AND status = 'success' GROUP BY version",
    )
    assert dict(history) == {str(v): 1 for v in versions}, history


def _sleeping(url: str) -> bool:
    return bool(
        query(
            url,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
        )
    )


def test_postgres_stopped_for_30_s_mid_run(
    own_stack: stack.Stack, setup: tuple[Kubectl, str, str]
) -> None:
    kubectl, namespace, url = setup
    versions = range(1, 5)
    _chain(kubectl, namespace, versions, 2)
    wait_for(lambda: _sleeping(url), timeout=90, what="the first migration's apply")
    db = own_stack.database
    postgres.stop(db.datadir)
    stopped = time.monotonic()
    time.sleep(PG_OUTAGE)
    postgres.start(db.datadir, port=db.port)
    back = time.monotonic()
    _all_succeeded(kubectl, namespace, versions)
    recovered = time.monotonic() - back
    _exactly_once(url, versions)
    record(
        "PostgreSQL stopped mid-apply",
        seconds(back - stopped),
        f"4 migrations of 2 s; restart to all Succeeded: {seconds(recovered)}",
    )
    assert recovered < RECOVERY_BOUND


def _restart_api_server(state_dir: Path, outage: float) -> float:
    """Stop the kube-apiserver, wait, start it again with the same command line; the moment it
    answers /readyz again."""
    pid = processes.read_pid(state_dir / "kube-apiserver.pid")
    assert pid is not None
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    processes.stop("kube-apiserver", state_dir)
    time.sleep(outage)
    processes.spawn("kube-apiserver", [a.decode() for a in argv], state_dir)
    return float(
        wait_for(
            lambda: _ready(state_dir) and time.monotonic(),
            timeout=120,
            what="the kube-apiserver back",
        )
    )


def _ready(state_dir: Path) -> bool:
    cp = controlplane.load(state_dir)
    return bool(cp and cp.get("/readyz")[0] == 200)


def test_kube_apiserver_stopped_for_60_s_mid_run(
    own_stack: stack.Stack, setup: tuple[Kubectl, str, str]
) -> None:
    kubectl, namespace, url = setup
    versions = range(1, 5)
    _chain(kubectl, namespace, versions, 3)
    wait_for(lambda: _sleeping(url), timeout=90, what="the first migration's apply")
    stopped = time.monotonic()
    back = _restart_api_server(own_stack.state_dir, API_OUTAGE)
    _all_succeeded(kubectl, namespace, versions)
    recovered = time.monotonic() - back
    _exactly_once(url, versions)
    jobs = kubectl.json("get", "jobs", "-n", namespace)["items"]
    assert not [j for j in jobs if (j.get("status") or {}).get("active")]
    record(
        "kube-apiserver stopped mid-apply",
        seconds(back - stopped),
        f"4 migrations of 3 s; ready to all Succeeded: {seconds(recovered)}",
    )
    assert recovered < RECOVERY_BOUND
