"""The example directory migrations/set, shipped with kustomize as docs/gitops.md shows
(`kubectl apply -k`): the generator's hashed ConfigMap name reaches the MigrationSet through the
nameReference configuration, the operator applies all five migrations, and lowering
targetVersion rolls the newest two back."""

from __future__ import annotations

import pytest

from harness.kube import Kubectl
from harness.operator import OperatorProcess
from harness.paths import REPO
from integration.operator.manifests import query, tables
from integration.operator.sets import patch_spec, wait_set

pytestmark = pytest.mark.integration


def test_the_kustomize_example_applies_and_rolls_back_by_target(
    kubectl: Kubectl, namespace: str, database_url: str, operator: OperatorProcess
) -> None:
    kubectl.run(
        "create",
        "secret",
        "generic",
        "orders-db",
        "-n",
        namespace,
        f"--from-literal=url={database_url}",
    )
    kubectl.run("apply", "-k", str(REPO / "migrations" / "set"), "-n", namespace)
    st = wait_set(kubectl, namespace, "orders", "Succeeded", "Failed", timeout=180)
    assert (st["phase"], st["currentVersion"], st["applied"]) == ("Succeeded", "005", 5), st
    assert {"customers", "orders", "order_statuses"} <= tables(database_url)
    assert query(database_url, "SELECT count(*) FROM order_statuses") == [(4,)]

    patch_spec(kubectl, namespace, "orders", {"targetVersion": "003"})
    st = wait_set(kubectl, namespace, "orders", "Succeeded", "Failed", timeout=180)
    assert (st["phase"], st["currentVersion"]) == ("Succeeded", "003"), st
    columns = query(
        database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'",
    )
    assert ("notes",) not in columns
    assert query(database_url, "SELECT to_regclass('orders_customer_id_idx')") == [(None,)]
