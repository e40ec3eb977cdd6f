"""DatabaseRestore end to end, and a Migration rolled back by restoring its pre-migration backup."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from harness import databases
from harness.kube import Kubectl
from harness.operator import OperatorProcess
from integration.operator.backups import backup, claim, fingerprint, restore, seed, wait_done
from integration.operator.manifests import (
    history,
    migration,
    query,
    set_rollback,
    status,
    wait_phase,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def other_url(pg_admin_url: str) -> Iterator[str]:
    """A second database, the restore target."""
    url = databases.create(pg_admin_url)
    try:
        yield url
    finally:
        databases.drop(pg_admin_url, url)


def test_restore_into_a_non_empty_database_is_refused_and_leaves_it_alone(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    other_url: str,
    operator: OperatorProcess,
) -> None:
    seed(database_url)
    with psycopg.connect(other_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE precious (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO precious SELECT g, 'keep ' || g FROM generate_series(1, 50) g")
    untouched = fingerprint(other_url)
    kubectl.run(
        "create", "secret", "generic", "other", "-n", namespace, f"--from-literal=url={other_url}"
    )
    kubectl.apply(claim() + "---\n" + backup("src"), "-n", namespace)
    assert wait_done(kubectl, namespace, "dbbackup", "src")["phase"] == "Succeeded"

    kubectl.apply(
        restore("into-other", "src", database={"secretRef": {"name": "other"}}), "-n", namespace
    )
    st = wait_done(kubectl, namespace, "dbrestore", "into-other")
    assert st["phase"] == "Failed"
    assert st["reason"] == "TargetNotEmpty"
    assert "not empty" in st["message"] and "public.precious" in st["message"]
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions["Stalled"] == "True" and conditions["Ready"] == "False"
    assert fingerprint(other_url) == untouched

    # Into an empty database it works, and every row arrives.
    with psycopg.connect(other_url, autocommit=True) as conn:
        conn.execute("DROP TABLE precious")
    kubectl.apply(
        restore("into-empty", "src", database={"secretRef": {"name": "other"}}), "-n", namespace
    )
    st = wait_done(kubectl, namespace, "dbrestore", "into-empty")
    assert st["phase"] == "Succeeded", st
    assert st["verification"]["matched"] is True and st["verification"]["rows"] == 1700
    assert fingerprint(other_url) == fingerprint(database_url)


def test_migration_backs_up_first_and_rolls_back_by_restoring(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    seed(database_url)
    before = fingerprint(database_url)
    kubectl.apply(claim(), "-n", namespace)
    manifest = migration(
        "m1-prices",
        "1",
        "ALTER TABLE orders ADD COLUMN currency text NOT NULL DEFAULT 'EUR';\n"
        "UPDATE orders SET total = total * 2;\n"
        "DELETE FROM customers WHERE id > 150 AND id NOT IN (SELECT customer_id FROM orders);",
        backup={
            "storage": {"persistentVolumeClaim": {"claimName": "backups", "path": "pre-migration"}}
        },
        rollbackStrategy="restore",
    )
    kubectl.apply(manifest, "-n", namespace)
    st = wait_phase(kubectl, namespace, "m1-prices", "Succeeded", "Failed", timeout=90)
    assert st["phase"] == "Succeeded", st
    assert st["backupRef"] == {"name": "m1-prices-pre-g1"}
    assert st["rollbackAvailable"] is True
    events = kubectl.run(
        "get", "events", "-n", namespace, "--field-selector=involvedObject.name=m1-prices"
    ).stdout
    assert "BackingUp" in events
    pre = kubectl.json("get", "dbbackup", "m1-prices-pre-g1", "-n", namespace)
    assert pre["status"]["phase"] == "Succeeded" and pre["status"]["verified"] is True
    assert pre["status"]["location"].startswith(f"pvc://backups/pre-migration/{namespace}/")
    assert pre["metadata"]["ownerReferences"][0]["kind"] == "Migration"
    # The backup was complete before anything was applied: its Job ended before the apply.
    assert pre["status"]["completedAt"] <= st["startedAt"]
    assert fingerprint(database_url) != before
    assert history(database_url) == [("1", "apply", "success")]

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO customers VALUES (9999, 'late', 'late@example.com')")
    set_rollback(kubectl, namespace, "m1-prices", True)
    st = wait_phase(kubectl, namespace, "m1-prices", "RolledBack", "Failed", timeout=90)
    assert st["phase"] == "RolledBack", st
    assert st["reason"] == "RestoredBackup"
    assert "restored backup m1-prices-pre-g1 taken at" in st["message"]
    assert "are lost" in st["message"]
    assert st["rollbackAvailable"] is False and st.get("checksum") is None
    ready = {c["type"]: c for c in st["conditions"]}["Ready"]
    assert ready["status"] == "True" and "are lost" in ready["message"]
    rst = kubectl.json("get", "dbrestore", "m1-prices-restore-g2", "-n", namespace)
    assert rst["spec"]["clean"] is True and rst["status"]["phase"] == "Succeeded"
    # The data is as before the migration; the write made after the backup is gone too,
    # and the history is back to its state at backup time (nothing applied).
    assert fingerprint(database_url) == before
    assert query(database_url, "SELECT count(*) FROM customers WHERE id = 9999") == [(0,)]
    assert history(database_url) == []
    assert status(kubectl, namespace, "m1-prices")["backupRef"] == {"name": "m1-prices-pre-g1"}
