"""What an on-call engineer tries first, where the other fault tests are silent: deleting a
running preflight Job by hand, stopping the operator gracefully (a rolling upgrade) mid-apply,
and deleting the database Secret mid-run and putting it back. Each ends with the migration
applied exactly once, by itself."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from faults.operator.figures import record, seconds
from faults.operator.storm import execute
from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import migration, query, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.full]

SLOW = "SELECT pg_sleep(3);\nINSERT INTO applied_log VALUES ('1');"


def _applied_once(url: str) -> None:
    assert query(url, "SELECT count(*) FROM applied_log") == [(1,)]
    assert query(
        url,
        "SELECT count(*) FROM kubemigrate.history WHERE kind = 'apply' AND status = 'success'",
    ) == [(1,)]


def _sleeping(url: str) -> bool:
    return bool(
        query(
            url,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
        )
    )


def test_a_preflight_job_deleted_by_hand_is_started_again(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    execute(database_url, "CREATE TABLE applied_log (version text)")
    kubectl.apply(migration("m1", "1", SLOW), "-n", namespace)
    wait_for(
        lambda: (
            kubectl.run("get", "job", "m1-preflight-g1", "-n", namespace, check=False).returncode
            == 0
        ),
        timeout=60,
        what="the preflight Job",
    )
    kubectl.run("delete", "job", "m1-preflight-g1", "-n", namespace, "--wait=false")
    started = time.monotonic()
    wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=120)
    _applied_once(database_url)
    record(
        "on-call: preflight Job deleted by hand", "recovered", seconds(time.monotonic() - started)
    )


def test_a_graceful_operator_stop_mid_apply(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    execute(database_url, "CREATE TABLE applied_log (version text)")
    first = start_operator()
    kubectl.apply(migration("m1", "1", SLOW, preflight={"enabled": False}), "-n", namespace)
    wait_for(lambda: _sleeping(database_url), timeout=60, what="the apply")
    first.stop()  # SIGTERM, as a rolling upgrade does
    start_operator()
    started = time.monotonic()
    wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=120)
    _applied_once(database_url)
    record(
        "on-call: operator stopped (SIGTERM) mid-apply",
        "recovered",
        seconds(time.monotonic() - started),
    )


def test_the_secret_deleted_mid_run_and_put_back(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    execute(database_url, "CREATE TABLE applied_log (version text)")
    kubectl.run("delete", "secret", "db", "-n", namespace)
    kubectl.apply(migration("m1", "1", SLOW, preflight={"enabled": False}), "-n", namespace)
    wait_for(
        lambda: (
            kubectl.json("get", "migration", "m1", "-n", namespace).get("status", {}).get("reason")
            == "SecretNotFound"
        ),
        timeout=60,
        what="SecretNotFound in status",
    )
    kubectl.run(
        "create", "secret", "generic", "db", "-n", namespace, f"--from-literal=url={database_url}"
    )
    started = time.monotonic()
    wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=120)
    _applied_once(database_url)
    record("on-call: Secret deleted and put back", "recovered", seconds(time.monotonic() - started))
