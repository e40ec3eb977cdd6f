"""A Migration end to end: kubectl apply, preflight Job, apply, status, rollback, re-apply."""

from __future__ import annotations

import pytest

from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import (
    history,
    migration,
    set_rollback,
    status,
    tables,
    wait_phase,
)

pytestmark = pytest.mark.integration

USERS = migration(
    "m1-users",
    "1",
    "CREATE TABLE users (id int PRIMARY KEY, email text);",
    rollback_sql="DROP TABLE users;",
)
GROUPS = migration(
    "m2-groups",
    "2",
    "CREATE TABLE groups (id int PRIMARY KEY);\nINSERT INTO groups VALUES (1), (2);",
    rollback_sql="DROP TABLE groups;",
    depends_on=("m1-users",),
)
MEMBERS = migration(
    "m10-members",
    "10",
    "CREATE TABLE members (user_id int REFERENCES users, group_id int REFERENCES groups);",
    rollback_sql="DROP TABLE members;",
    depends_on=("m2-groups",),
)


def test_dependent_migrations_applied_in_version_order(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    kubectl.apply(MEMBERS + "---\n" + GROUPS + "---\n" + USERS, "-n", namespace)
    kubectl.run(
        "wait", "--for=condition=Ready", "migration", "--all", "-n", namespace, "--timeout=90s"
    )
    assert tables(database_url) == {"users", "groups", "members"}
    assert history(database_url) == [
        ("1", "apply", "success"),
        ("2", "apply", "success"),
        ("10", "apply", "success"),
    ]
    st = status(kubectl, namespace, "m2-groups")
    assert st["phase"] == "Succeeded"
    assert st["rowsAffected"] == 2
    assert st["tablesCreated"] == ["public.groups"]
    assert st["checksum"].startswith("sha256:")
    assert st["rollbackAvailable"] is True
    assert st["schemaVersion"] == "2"
    assert st["durationSeconds"] >= 0
    assert {c["name"] for c in st["preflight"]} >= {
        "connectivity",
        "dependencies",
        "drift",
        "lock-blockers",
    }
    ready = {c["type"]: c for c in st["conditions"]}
    assert ready["Ready"]["status"] == "True" and ready["Stalled"]["status"] == "False"
    table = kubectl.run("get", "mig", "-n", namespace).stdout
    assert table.split("\n")[0].split() == [
        "NAME",
        "VERSION",
        "PHASE",
        "DURATION",
        "ROLLBACK",
        "AGE",
    ]
    events = kubectl.run(
        "get", "events", "-n", namespace, "--field-selector=involvedObject.name=m1-users"
    ).stdout
    assert "Applied" in events and "PreflightStarted" in events

    # The API refuses a change of the applied SQL (CEL on status.checksum).
    changed = USERS.replace("email text", "email varchar")
    refused = kubectl.apply(changed, "-n", namespace, check=False)
    assert refused.returncode != 0
    assert "spec.sql cannot change once the migration is applied" in refused.stderr


def test_rollback_and_reapply(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    kubectl.apply(USERS + "---\n" + GROUPS, "-n", namespace)
    wait_phase(kubectl, namespace, "m2-groups", "Succeeded")
    set_rollback(kubectl, namespace, "m2-groups", True)
    st = wait_phase(kubectl, namespace, "m2-groups", "RolledBack")
    assert "groups" not in tables(database_url)
    assert st["rollbackAvailable"] is False
    assert "checksum" not in st
    kubectl.run(
        "wait", "--for=condition=Ready", "migration/m2-groups", "-n", namespace, "--timeout=10s"
    )
    set_rollback(kubectl, namespace, "m2-groups", False)
    wait_phase(kubectl, namespace, "m2-groups", "Succeeded")
    assert "groups" in tables(database_url)
    assert [row[:2] for row in history(database_url) if row[0] == "2"] == [
        ("2", "apply"),
        ("2", "rollback"),
        ("2", "apply"),
    ]


def test_rollback_refusals(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    no_down = migration("m1-plain", "1", "CREATE TABLE plain (id int);")
    kubectl.apply(no_down + "---\n" + GROUPS.replace("m1-users", "m1-plain"), "-n", namespace)
    wait_phase(kubectl, namespace, "m2-groups", "Succeeded")
    set_rollback(kubectl, namespace, "m1-plain", True)
    st = wait_phase(kubectl, namespace, "m1-plain", "Failed")
    assert st["reason"] == "RollbackBlocked"
    assert "m2-groups" in st["message"]
    set_rollback(kubectl, namespace, "m2-groups", True)
    wait_phase(kubectl, namespace, "m2-groups", "RolledBack")
    # The dependent's rollback wakes it; now the missing rollback SQL is what stops it.
    st = wait_for(
        lambda: (s := status(kubectl, namespace, "m1-plain"))["reason"] != "RollbackBlocked" and s,
        timeout=30,
        what="m1-plain to be looked at again",
    )
    assert (st["phase"], st["reason"]) == ("Failed", "NoRollbackSql"), st
    assert "rollbackSql" in st["message"]
    assert "plain" in tables(database_url)


def test_bad_sql_fails_cleanly_and_a_fixed_migration_works(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    bad = migration(
        "m1-bad",
        "1",
        "CREATE TABLE good (id int);\n\nCREATE TABLE (oops;\n",
        preflight={"enabled": False},
    )
    kubectl.apply(bad, "-n", namespace)
    st = wait_phase(kubectl, namespace, "m1-bad", "Failed")
    assert st["lastError"]["sqlstate"] == "42601"
    assert st["lastError"]["line"] == 3
    assert st["reason"] == "SQLError"
    stalled = {c["type"]: c["status"] for c in st["conditions"]}
    assert stalled == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    assert tables(database_url) == set()
    kubectl.run("delete", "migration", "m1-bad", "-n", namespace)
    kubectl.apply(migration("m1-fixed", "1", "CREATE TABLE good (id int);"), "-n", namespace)
    wait_phase(kubectl, namespace, "m1-fixed", "Succeeded")
    assert tables(database_url) == {"good"}
    assert [r[2] for r in history(database_url)] == ["failed", "success"]


def test_dry_run_changes_nothing(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    kubectl.apply(
        migration("m1-dry", "1", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);", dryRun=True),
        "-n",
        namespace,
    )
    st = wait_phase(kubectl, namespace, "m1-dry", "DryRunSucceeded")
    assert st["dryRun"]["tablesCreated"] == ["public.t"]
    assert st["dryRun"]["rowsAffected"] == 1
    assert tables(database_url) == set()
    kubectl.run(
        "wait", "--for=condition=Ready", "migration/m1-dry", "-n", namespace, "--timeout=10s"
    )


def test_pending_says_what_it_waits_for(
    kubectl: Kubectl, namespace: str, db_secret: str, operator: OperatorProcess
) -> None:
    kubectl.apply(GROUPS, "-n", namespace)
    st = wait_phase(kubectl, namespace, "m2-groups", "Pending")
    assert st["reason"] == "WaitingForDependency"
    assert st["waitingFor"] == "m1-users"
    assert "not found" in st["message"]
    reconciling = {c["type"]: c["status"] for c in st["conditions"]}["Reconciling"]
    assert reconciling == "True"
    kubectl.apply(USERS, "-n", namespace)
    wait_phase(kubectl, namespace, "m2-groups", "Succeeded")


def test_deleting_a_migration_leaves_the_database(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    kubectl.apply(USERS, "-n", namespace)
    wait_phase(kubectl, namespace, "m1-users", "Succeeded")
    kubectl.run("delete", "migration", "m1-users", "-n", namespace, "--timeout=30s")
    assert "users" in tables(database_url)
    assert (
        kubectl.json("get", "jobs", "-n", namespace, "-l", "kubemigrate.dev/migration=m1-users")[
            "items"
        ]
        == []
    )
