"""A version the database already has: status comes from the history row of the run that
applied it (issue 10, defect 6).

An operator killed between the COMMIT and the status write leaves exactly this: the history
holds the run, the Migration's status does not. The restarted operator's apply finds the version
applied and does nothing; its status must still show the run that did the work.
"""

from __future__ import annotations

import pytest

from harness.kube import Kubectl
from harness.operator import OperatorProcess
from integration.operator.manifests import history, migration, wait_phase
from kubemigrate.engine import MigrationSource, Migrator, Origin

pytestmark = pytest.mark.integration

SQL = (
    "CREATE TABLE items (id int);\n"
    "INSERT INTO items SELECT generate_series(1, 5);\n"
    "SELECT pg_sleep(1);\n"
)


def test_status_shows_the_run_that_applied_the_version(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    # The run the killed operator committed, with the Migration as its origin.
    engine = Migrator(database_url, origin=Origin("m1", "uid-of-m1", 1))
    report = engine.apply([MigrationSource("1", "m1", SQL)])
    [applied] = report.results

    kubectl.apply(
        migration("m1", "1", SQL, preflight={"enabled": False}),
        "-n",
        namespace,
    )
    st = wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=60)
    assert st["reason"] == "AlreadyApplied"
    assert st["runId"] == report.run_id
    assert st["durationSeconds"] == pytest.approx(applied.duration_seconds, abs=0.002)
    assert st["durationSeconds"] >= 1
    assert st["rowsAffected"] == applied.rows_affected == 5
    assert st["tablesCreated"] == ["public.items"]
    assert st["startedAt"] == applied.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert st["completedAt"] == applied.finished_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"by run {report.run_id}" in st["message"]
    assert history(database_url) == [("1", "apply", "success")]  # applied exactly once
