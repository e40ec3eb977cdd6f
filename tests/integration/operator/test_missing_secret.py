"""A Migration whose Secret or key is missing says so in status within seconds, before any Job
exists, and goes on by itself once it appears (issue 10, defect 4)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.manifests import migration, status, tables, wait_phase

pytestmark = pytest.mark.integration


def jobs(kubectl: Kubectl, namespace: str) -> list[str]:
    return [j["metadata"]["name"] for j in kubectl.json("get", "jobs", "-n", namespace)["items"]]


def reason_is(kubectl: Kubectl, namespace: str, reason: str) -> Callable[[], Any]:
    return lambda: (s := status(kubectl, namespace, "m1")).get("reason") == reason and s


def test_a_missing_secret_and_key_are_named_then_it_recovers(
    kubectl: Kubectl,
    namespace: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    start_operator(KUBEMIGRATE_RETRY_MAX_SECONDS="4")
    kubectl.apply(migration("m1", "1", "CREATE TABLE found (id int);"), "-n", namespace)
    created = time.monotonic()
    st = wait_for(reason_is(kubectl, namespace, "SecretNotFound"), timeout=15, what="the reason")
    assert time.monotonic() - created < 15
    assert st["phase"] == "Pending"
    assert st["message"].startswith(f"Secret {namespace}/db not found (attempt 1; retrying in ")
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions == {"Ready": "False", "Reconciling": "True", "Stalled": "False"}
    assert jobs(kubectl, namespace) == []

    kubectl.run("create", "secret", "generic", "db", "-n", namespace, "--from-literal=dsn=x")
    st = wait_for(reason_is(kubectl, namespace, "SecretKeyNotFound"), timeout=15, what="no key")
    assert st["message"].startswith(f"Secret {namespace}/db has no key 'url'")
    assert jobs(kubectl, namespace) == []

    patch = json.dumps({"stringData": {"url": database_url}})
    kubectl.run("patch", "secret", "db", "-n", namespace, "--type=merge", "-p", patch)
    wait_phase(kubectl, namespace, "m1", "Succeeded", timeout=60)
    assert tables(database_url) == {"found"}
    assert jobs(kubectl, namespace) == ["m1-preflight-g1"]
