"""Failure and recovery: a wrong password, a killed operator, a database outage."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import databases, postgres
from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from harness.ports import free_port
from integration.operator.manifests import history, migration, query, status, tables, wait_phase

pytestmark = pytest.mark.integration

WRONG = "wrong-Pa55word-xyzzy"


def test_wrong_password_is_retried_then_stalls_without_leaking_it(
    kubectl: Kubectl,
    namespace: str,
    database_url: str,
    pg_admin_url: str,
    start_operator: Callable[..., OperatorProcess],
    crds: list[str],
) -> None:
    operator = start_operator(KUBEMIGRATE_LOGIN_ATTEMPTS="3", KUBEMIGRATE_RETRY_MAX_SECONDS="2")
    databases.ensure_role(pg_admin_url, postgres.PASSWORD_ROLE, "the-right-one")
    url = databases.with_user(database_url, postgres.PASSWORD_ROLE, WRONG)
    kubectl.run(
        "create", "secret", "generic", "baddb", "-n", namespace, f"--from-literal=url={url}"
    )
    kubectl.apply(
        migration("m1", "1", "CREATE TABLE never (id int);", secret="baddb"), "-n", namespace
    )
    # Between a refused login and the next attempt's Job (a backoff of 1 to 2 s), status says
    # why it waits; a poll may miss the first such window under load, not the second as well.
    st = wait_for(
        lambda: (
            (s := status(kubectl, namespace, "m1")).get("reason") == "AuthenticationFailed"
            and s.get("phase") == "Preflight"
            and s
        ),
        timeout=60,
        what="a refused login, waiting to retry",
    )
    assert st["failedLogins"] in (1, 2)
    assert "password authentication failed" in st["message"]
    assert f"(attempt {st['failedLogins']} of 3; retrying in " in st["message"]
    connectivity = next(c for c in st["preflight"] if c["name"] == "connectivity")
    assert connectivity["passed"] is False
    reconciling = {c["type"]: c["status"] for c in st["conditions"]}["Reconciling"]
    assert reconciling == "True"
    # A bounded number of failed logins, then Stalled: no Job after that.
    st = wait_phase(kubectl, namespace, "m1", "Failed", timeout=90)
    assert (st["reason"], st["failedLogins"]) == ("AuthenticationFailed", 3)
    assert {c["type"]: c["status"] for c in st["conditions"]}["Stalled"] == "True"
    assert "fix Secret baddb key url" in st["message"]
    jobs = kubectl.json("get", "jobs", "-n", namespace)["items"]
    assert [j["metadata"]["name"] for j in jobs] == ["m1-preflight-g1-2"]  # the others deleted
    everything = (
        kubectl.run("get", "migration", "m1", "-n", namespace, "-o", "yaml").stdout
        + kubectl.run("get", "events", "-n", namespace, "-o", "yaml").stdout
        + kubectl.run("get", "jobs", "-n", namespace, "-o", "yaml").stdout
        + operator.text()
    )
    assert WRONG not in everything
    assert tables(database_url) == set()
    assert query(database_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'kubemigrate'") == []


def test_operator_killed_mid_migration_applies_it_exactly_once(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    first = start_operator()
    kubectl.apply(
        migration(
            "m1-slow",
            "1",
            "SELECT pg_sleep(4);\nCREATE TABLE slow (id int);",
            preflight={"enabled": False},
        ),
        "-n",
        namespace,
    )
    wait_phase(kubectl, namespace, "m1-slow", "Applying", timeout=30)
    first.kill()
    assert tables(database_url) == set()
    start_operator()
    st = wait_phase(kubectl, namespace, "m1-slow", "Succeeded", timeout=90)
    assert tables(database_url) == {"slow"}
    successes = [r for r in history(database_url) if r == ("1", "apply", "success")]
    assert len(successes) == 1
    assert st["schemaVersion"] == "1"


def test_database_outage_recovers_by_itself(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, crds: list[str]
) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kubemigrate-outage-") as tmp:
        datadir = Path(tmp) / "pg"
        server = postgres.start(datadir, port=port)
        url = databases.create(server.url, "outage")
        postgres.stop(datadir)
        kubectl.run(
            "create", "secret", "generic", "db", "-n", namespace, f"--from-literal=url={url}"
        )
        kubectl.apply(migration("m1", "1", "CREATE TABLE back (id int);"), "-n", namespace)
        st = wait_for(
            lambda: (
                (s := status(kubectl, namespace, "m1")).get("reason") == "PreflightFailed" and s
            ),
            timeout=60,
            what="the outage to show",
        )
        assert {c["type"]: c["status"] for c in st["conditions"]}["Reconciling"] == "True"
        assert "retrying" in st["message"]
        postgres.start(datadir, port=port)
        try:
            wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=90)
            assert tables(url) == {"back"}
        finally:
            postgres.stop(datadir)


def test_operator_restarted_during_preflight_adopts_the_job(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    first = start_operator()
    kubectl.apply(migration("m1", "1", "CREATE TABLE adopted (id int);"), "-n", namespace)
    wait_for(
        lambda: kubectl.json("get", "jobs", "-n", namespace)["items"],
        timeout=30,
        interval=0.05,
        what="the preflight Job",
    )
    first.kill()
    start_operator()
    wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=60)
    jobs = [j["metadata"]["name"] for j in kubectl.json("get", "jobs", "-n", namespace)["items"]]
    assert jobs == ["m1-preflight-g1"]
    assert history(database_url) == [("1", "apply", "success")]
