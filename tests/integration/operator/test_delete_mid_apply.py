"""Deleting a Migration (or its namespace) while its SQL runs cancels the run: the transaction is
rolled back before the finalizer is released, and an Event (or, in a namespace being deleted,
the operator's log) says so. Nothing commits after the object is gone."""

from __future__ import annotations

import time

import pytest

from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import migration, query, tables, wait_phase

pytestmark = pytest.mark.integration

SLEEP = 8
SLOW = f"CREATE TABLE slow (id int);\nSELECT pg_sleep({SLEEP});\nCREATE TABLE slower (id int);"
GONE_BOUND = 30.0


def _sleeping(url: str) -> bool:
    rows = query(
        url,
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
        "AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid() AND state = 'active'",
    )
    return bool(rows)


def _start_slow(kubectl: Kubectl, namespace: str, database_url: str) -> None:
    kubectl.apply(migration("m1", "1", SLOW, preflight={"enabled": False}), "-n", namespace)
    wait_phase(kubectl, namespace, "m1", "Applying", timeout=30)
    wait_for(lambda: _sleeping(database_url), timeout=30, what="the migration's pg_sleep")


def _nothing_committed(database_url: str) -> None:
    """Wait past the moment the migration would have committed: still nothing there."""
    time.sleep(SLEEP + 2)
    assert tables(database_url) & {"slow", "slower"} == set()
    applied = query(
        database_url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'kubemigrate' AND tablename = 'history'",
    )
    if applied[0][0]:
        rows = query(database_url, "SELECT status FROM kubemigrate.history WHERE version = '1'")
        assert ("success",) not in rows, rows


def test_deleting_a_migration_mid_apply_cancels_and_rolls_back(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    _start_slow(kubectl, namespace, database_url)
    started = time.monotonic()
    kubectl.run("delete", "migration", "m1", "-n", namespace, "--wait=false")
    wait_for(
        lambda: kubectl.run("get", "migration", "m1", "-n", namespace, check=False).returncode,
        timeout=GONE_BOUND,
        what="the Migration to be gone",
    )
    gone_after = time.monotonic() - started
    assert gone_after < SLEEP, (
        f"gone after {gone_after:.1f}s: the run was waited for, not cancelled"
    )
    assert not _sleeping(database_url)  # cancelled before the finalizer was released
    _nothing_committed(database_url)
    events = [
        e
        for e in kubectl.json("get", "events", "-n", namespace)["items"]
        if e["involvedObject"].get("name") == "m1" and e["reason"] == "ApplyCancelled"
    ]
    assert events, "no ApplyCancelled Event"
    assert "rolled back" in events[0]["message"]


def test_deleting_the_namespace_mid_apply_cancels_and_rolls_back(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    _start_slow(kubectl, namespace, database_url)
    kubectl.run("delete", "namespace", namespace, "--wait=false")
    wait_for(
        lambda: kubectl.run("get", "migration", "m1", "-n", namespace, check=False).returncode,
        timeout=GONE_BOUND,
        what="the Migration to be gone with its namespace",
    )
    assert not _sleeping(database_url)
    _nothing_committed(database_url)
    assert "ApplyCancelled" in operator.text()
