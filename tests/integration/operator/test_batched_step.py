"""A Migration with a batched step: its progress in status while it runs, spec.paused pausing
and resuming it, and an operator killed mid-step whose successor resumes from the checkpoint
(every row changed exactly once, the committed batches not run again)."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import history, migration, query, status, wait_phase

pytestmark = pytest.mark.integration

ROWS = 60_000
SIZE = 1000

BACKFILL = f"""ALTER TABLE big ADD COLUMN cents bigint;
-- kubemigrate: batch size={SIZE} pause=100ms
UPDATE big SET n = n + 1, cents = id * 100
WHERE id IN (SELECT id FROM big WHERE id > coalesce(:last_key, 0) ORDER BY id LIMIT :batch_size)
RETURNING id;
"""


def _paused(kubectl: Kubectl, namespace: str, value: bool) -> None:
    kubectl.run(
        "patch", "migration", "m1", "-n", namespace, "--type=merge",
        "-p", f'{{"spec": {{"paused": {"true" if value else "false"}}}}}',
    )  # fmt: skip


def _done(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM big WHERE n = 1")[0][0])


def test_progress_pause_and_a_killed_operator_resuming_from_the_checkpoint(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0)")
        conn.execute(f"INSERT INTO big (id) SELECT generate_series(1, {ROWS})")
        conn.execute("ANALYZE big")
    first = start_operator()
    kubectl.apply(migration("m1", "1", BACKFILL, preflight={"enabled": False}), "-n", namespace)
    st = wait_for(
        lambda: (s := status(kubectl, namespace, "m1")).get("batchProgress") and s,
        timeout=60,
        what="batch progress in status",
    )
    assert st["phase"] == "Applying"
    progress = st["batchProgress"]
    assert progress["statement"] == 2 and progress["rowsDone"] > 0
    assert progress["rowsEstimate"] is not None and progress["rowsEstimate"] > ROWS // 3
    assert "of about" in st["message"]

    _paused(kubectl, namespace, True)
    st = wait_for(
        lambda: (s := status(kubectl, namespace, "m1"))["batchProgress"]["state"] == "paused" and s,
        timeout=30,
        what="the step paused",
    )
    assert st["reason"] == "Paused"
    held = _done(database_url)
    time.sleep(2)
    assert _done(database_url) == held  # no batch while paused
    assert 0 < held < ROWS

    # Killed while paused; its successor resumes from the checkpoint, still paused.
    first.kill()
    start_operator()
    time.sleep(3)
    assert _done(database_url) == held
    _paused(kubectl, namespace, False)
    st = wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=120)
    assert query(database_url, "SELECT min(n), max(n), count(*) FROM big") == [(1, 1, ROWS)]
    successes = [r for r in history(database_url) if r == ("1", "apply", "success")]
    assert len(successes) == 1
    # The last run changed only what the checkpoint did not hold.
    assert st["rowsAffected"] == ROWS - held
    assert st["batchProgress"]["state"] == "done"
