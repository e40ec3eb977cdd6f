"""``kubemigrate fleet-worker`` against the real control plane and PostgreSQL.

The worker runs as a subprocess with what a wave's pod has: a ServiceAccount token (minted with
the TokenRequest API) whose Role names exactly the wave's Secrets and its ledger, the cluster's
CA, KUBERNETES_SERVICE_HOST/PORT, and no kubeconfig. Every target's outcome is checked in the
ledger and in its database's history, and no Secret value may appear anywhere the worker writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from harness import databases
from harness.kube import Cluster, Kubectl, wait_for
from integration.cli.cli_helpers import Migrations, query
from integration.cli.fleet_helpers import Wave, finish, lines

pytestmark = pytest.mark.usefixtures("cluster")

PASSWORD = "canary-pw-7f3a"
JUNK = "canary-junk-91b2 is not a url"
OTHER = "canary-nokey-55c1"


@pytest.fixture
def wave(kubectl: Kubectl, namespace: str, tmp_path: Path, cluster: Cluster) -> Wave:
    return Wave(kubectl, namespace, tmp_path)


@pytest.fixture
def tenant_db(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Make fresh databases (superuser URLs), dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(databases.create(pg_admin_url, prefix="fleet"))
        return made[-1]

    yield make
    for url in made:
        databases.drop(pg_admin_url, url)


def items(migrations: Migrations, sleep: float = 0.0) -> Path:
    pause = f"SELECT pg_sleep({sleep});\n" if sleep else ""
    migrations.write("V1__items.sql", pause + "CREATE TABLE items (id int PRIMARY KEY, name text);")
    migrations.write("V2__seed.sql", "INSERT INTO items VALUES (1, 'a'), (2, 'b');")
    return migrations.path


def applied(url: str, schema: str = "kubemigrate") -> list[str]:
    try:
        rows = query(
            url,
            f"SELECT version FROM {schema}.history "
            "WHERE kind = 'apply' AND status = 'success' ORDER BY version",
        )
    except psycopg.errors.UndefinedTable:
        return []
    return [r[0] for r in rows]


def touched(url: str) -> bool:
    return bool(query(url, "SELECT 1 FROM pg_namespace WHERE nspname = 'kubemigrate'"))


def test_a_worker_runs_every_target_and_records_each_failure_without_a_secret(
    wave: Wave,
    tenant_db: Callable[[], str],
    password_role: Callable[[str], str],
    tmp_path: Path,
) -> None:
    role = password_role(PASSWORD)
    urls = {name: databases.with_user(tenant_db(), role, PASSWORD) for name in "abc"}
    query(urls["b"], "CREATE TABLE items (conflict int)")  # tenant-b's V1 fails: 42P07
    for name, url in urls.items():
        wave.secret(f"tenant-{name}", {"url": url})
    wave.secret("tenant-junk", {"url": JUNK})
    wave.secret("tenant-nokey", {"password": OTHER})
    wave.secret("tenant-other", {"url": urls["a"]})  # exists, but not the wave's: forbidden
    order = [
        "tenant-a",
        "tenant-junk",
        "tenant-nokey",
        "tenant-gone",
        "tenant-other",
        "tenant-b",
        "tenant-c",
    ]
    wave.ledger(10, order)
    allowed = [n for n in order if n != "tenant-other"]
    sa_dir = wave.service_account(allowed)
    migrations = items(Migrations(tmp_path / "migrations"))

    log = tmp_path / "termination-log"
    result = finish(
        wave.start(migrations, sa_dir, "--secret-key", "url", "-v", "--termination-log", str(log))
    )

    assert result.returncode == 0, str(result)
    assert "stopped: done" in result.stderr
    summary = json.loads(log.read_text())
    assert summary == {"ok": True, "reason": "done", "ran": 7, "failed": 5, "error": None}
    reasons = {line["name"]: line["reason"] for line in lines(result)}
    assert reasons == {
        "tenant-a": "Applied",
        "tenant-junk": "InvalidDatabaseUrl",
        "tenant-nokey": "SecretKeyNotFound",
        "tenant-gone": "SecretNotFound",
        "tenant-other": "SecretForbidden",
        "tenant-b": "SQLError",
        "tenant-c": "Applied",
    }
    ledger = wave.read_ledger()
    assert (ledger["next"], ledger["running"]) == ("7", "")
    assert (ledger["succeeded"], ledger["failed"]) == ("0,6", "1-5")
    errors = json.loads(ledger["errors"])
    assert [e["name"] for e in errors] == order[1:6]
    assert [e["message"].split(":")[0] for e in errors] == [reasons[n] for n in order[1:6]]
    assert errors[4]["version"] == "1" and errors[4]["sqlstate"] == "42P07"
    assert "tenant-junk" in errors[0]["message"] and "key url" in errors[0]["message"]
    assert json.loads(ledger["versions"]) == {"2": 2, "": 5}
    assert int(ledger["rows"]) == 4

    assert applied(urls["a"]) == applied(urls["c"]) == ["1", "2"]
    assert applied(urls["b"]) == []
    everything = result.stdout + result.stderr + json.dumps(ledger)
    for secret in (PASSWORD, JUNK, "canary-junk", OTHER, *urls.values()):
        assert secret not in everything


def test_two_workers_on_one_ledger_never_claim_a_target_twice(
    wave: Wave, tenant_db: Callable[[], str], tmp_path: Path
) -> None:
    names = [f"tenant-{i}" for i in range(6)]
    urls = {name: tenant_db() for name in names}
    for name, url in urls.items():
        wave.secret(name, {"url": url})
    wave.ledger(0, names)
    sa_dir = wave.service_account(names)
    migrations = items(Migrations(tmp_path / "migrations"), sleep=1.0)

    workers = [wave.start(migrations, sa_dir, "--secret-key", "url") for _ in range(2)]
    results = [finish(w) for w in workers]

    for result in results:
        assert result.returncode == 0, str(result)
        assert "stopped: done" in result.stderr
    ran = [line["name"] for result in results for line in lines(result)]
    assert sorted(ran) == names  # each exactly once
    assert all(lines(result) for result in results), "both workers ran targets"
    ledger = wave.read_ledger()
    assert (ledger["next"], ledger["succeeded"], ledger["failed"]) == ("6", "0-5", "")
    assert json.loads(ledger["versions"]) == {"2": 6}
    for url in urls.values():
        assert applied(url) == ["1", "2"]


def test_past_the_budget_no_worker_starts_another_target(
    wave: Wave, tenant_db: Callable[[], str], tmp_path: Path
) -> None:
    """Budget 0, and the first target fails while the other worker runs the second: that one
    finishes, and neither worker starts another target.

    Worker A claims target 0, whose V1 sleeps 3 s and then fails (its table exists); worker B
    starts once A has claimed, so it claims target 1, whose run takes at least 5 s (V1 and V2
    sleep): A's failure is in the ledger before B asks for more."""
    names = [f"tenant-{i}" for i in range(6)]
    urls = {name: tenant_db() for name in names}
    query(urls["tenant-0"], "CREATE TABLE items (conflict int)")
    for name, url in urls.items():
        wave.secret(name, {"url": url})
    wave.ledger(0, names)
    sa_dir = wave.service_account(names)
    migrations = Migrations(tmp_path / "migrations")
    migrations.write("V1__items.sql", "SELECT pg_sleep(3);\nCREATE TABLE items (id int);")
    migrations.write("V2__seed.sql", "SELECT pg_sleep(2);\nINSERT INTO items VALUES (1);")

    first = wave.start(migrations.path, sa_dir, "--secret-key", "url")
    wait_for(lambda: wave.read_ledger()["next"] == "1", timeout=30, what="target 0 claimed")
    second = wave.start(migrations.path, sa_dir, "--secret-key", "url")
    a, b = finish(first), finish(second)

    for result in (a, b):
        assert result.returncode == 0, str(result)
        assert "stopped: halted" in result.stderr
    assert [(x["name"], x["reason"]) for x in lines(a)] == [("tenant-0", "SQLError")]
    assert [(x["name"], x["reason"]) for x in lines(b)] == [("tenant-1", "Applied")]
    ledger = wave.read_ledger()
    assert (ledger["next"], ledger["running"]) == ("2", "")
    assert (ledger["failed"], ledger["succeeded"]) == ("0", "1")
    assert json.loads(ledger["errors"])[0]["name"] == "tenant-0"
    assert applied(urls["tenant-1"]) == ["1", "2"]
    for name in names[2:]:
        assert not touched(urls[name]), f"{name} was started after the halt"


def test_schemas_mode_runs_each_schema_with_its_own_history(
    wave: Wave, tenant_db: Callable[[], str], tmp_path: Path
) -> None:
    shared = tenant_db()
    for schema in ("tenant_a", "tenant_b"):
        query(shared, f"CREATE SCHEMA {schema}")
    wave.secret("shared-db", {"dsn": shared})
    order = ["tenant_a", "tenant_missing", "tenant_b"]
    wave.ledger(5, order)
    sa_dir = wave.service_account(["shared-db"])
    migrations = items(Migrations(tmp_path / "migrations"))

    result = finish(
        wave.start(
            migrations, sa_dir, "--schemas-secret", "shared-db", "--schemas-key", "dsn", "-v"
        )
    )

    assert result.returncode == 0, str(result)
    reasons = {line["name"]: line["reason"] for line in lines(result)}
    assert reasons == {"tenant_a": "Applied", "tenant_missing": "SchemaNotFound",
                       "tenant_b": "Applied"}  # fmt: skip
    ledger = wave.read_ledger()
    assert (ledger["succeeded"], ledger["failed"]) == ("0,2", "1")
    for schema in ("tenant_a", "tenant_b"):
        assert applied(shared, schema) == ["1", "2"]
        assert query(shared, f"SELECT count(*) FROM {schema}.items") == [(2,)]
    assert not touched(shared)  # no history in the default schema
    assert not query(shared, "SELECT 1 FROM pg_tables WHERE tablename = 'items' "
                             "AND schemaname NOT IN ('tenant_a', 'tenant_b')")  # fmt: skip
    assert shared not in result.stdout + result.stderr
