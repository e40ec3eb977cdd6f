"""Every SQL size the schema accepts applies, rolls back and deletes: kopf's bookkeeping must not
copy the spec into an annotation (256 KiB at most), and the preflight Job must get SQL that
does not fit one ConfigMap (1 MiB at most, plan included)."""

from __future__ import annotations

import time

import pytest
import yaml

from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import query, set_rollback, tables, wait_phase
from kubemigrate.models.migration import SQL_MAX_LENGTH

pytestmark = pytest.mark.integration

KIB = 1024
SIZES = {
    "1KiB": KIB,
    "255KiB": 255 * KIB,
    "300KiB": 300 * KIB,
    "900KiB": 900 * KIB,
    "max": SQL_MAX_LENGTH,
}
DELETE_BOUND = 30.0


HEAD = "CREATE TABLE big (id int, note text);\nINSERT INTO big VALUES (1, '"
TAIL = "');\n"


def sql_of(size: int) -> str:
    """SQL of exactly size characters: a table, and a row whose text pads it out."""
    return HEAD + "x" * (size - len(HEAD) - len(TAIL)) + TAIL


def manifest(size: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "Migration",
            "metadata": {"name": "big"},
            "spec": {
                "database": {"secretRef": {"name": "db"}},
                "version": "1",
                "sql": sql_of(size),
                "rollbackSql": "DROP TABLE big;",
            },
        }
    )


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_sql_of_every_accepted_size_applies_rolls_back_and_deletes(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
    size: int,
) -> None:
    assert len(sql_of(size)) == size
    # Client-side apply would copy the object into its own 256 KiB annotation: server-side.
    kubectl.apply(manifest(size), "-n", namespace, "--server-side")
    st = wait_phase(kubectl, namespace, "big", "Succeeded", "Failed", timeout=120)
    assert st["phase"] == "Succeeded", st
    assert query(database_url, "SELECT length(note) FROM big") == [(size - len(HEAD) - len(TAIL),)]
    annotations = kubectl.json("get", "migration", "big", "-n", namespace)["metadata"].get(
        "annotations", {}
    )
    assert sum(len(v) for v in annotations.values()) < 4 * KIB, list(annotations)

    set_rollback(kubectl, namespace, "big", True)
    wait_phase(kubectl, namespace, "big", "RolledBack", timeout=60)
    assert "big" not in tables(database_url)

    started = time.monotonic()
    kubectl.run("delete", "migration", "big", "-n", namespace, "--wait=false")
    wait_for(
        lambda: kubectl.run("get", "migration", "big", "-n", namespace, check=False).returncode,
        timeout=DELETE_BOUND,
        what="the Migration to be gone",
    )
    assert time.monotonic() - started < DELETE_BOUND
    assert "Traceback" not in operator.text(), operator.text()[-3000:]
