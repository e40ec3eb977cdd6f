"""A fleet's waves as the operator builds them, on the real control plane: each wave runs under a
ServiceAccount of its own whose Role names exactly its Secrets and its ledger, no Secret value is
in any object the operator writes, a selector that matches nothing is said, and bad fleet specs
are refused by the API server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from harness import migset
from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.sets import configmaps, set_status, wait_set

pytestmark = pytest.mark.integration

CANARY_VALUE = "postgresql://tenant:Fl33t-canary-pw@127.0.0.1:1/nowhere"


def fleet(name: str, cms: list[str], **spec: Any) -> str:
    body: dict[str, Any] = {
        "targets": {"secretSelector": {"matchLabels": {"app": name}}},
        "source": {"configMaps": [{"name": n} for n in cms]},
        **spec,
    }
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "MigrationSet",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def tenant_secret(kubectl: Kubectl, namespace: str, name: str, app: str | None) -> None:
    kubectl.run(
        "create", "secret", "generic", name, "-n", namespace, f"--from-literal=url={CANARY_VALUE}"
    )
    if app is not None:
        kubectl.run("label", "secret", name, "-n", namespace, f"app={app}")


def test_a_wave_runs_under_its_own_identity(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    cms = configmaps(kubectl, namespace, "orders", migset.files(3))
    for name in ("t-a", "t-b", "t-c"):
        tenant_secret(kubectl, namespace, name, "orders")
    tenant_secret(kubectl, namespace, "other", None)
    kubectl.apply(fleet("orders", cms, rollout={"canary": 1}), "-n", namespace)

    def first_job() -> dict[str, Any] | None:
        jobs = kubectl.json("get", "jobs", "-n", namespace, "-l", "kubemigrate.dev/wave=0")
        return jobs["items"][0] if jobs["items"] else None

    job = wait_for(first_job, timeout=60, interval=0.5, what="the canary wave's Job")
    name = job["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    assert pod["automountServiceAccountToken"] is True
    container = pod["containers"][0]
    assert container["args"][0] == "fleet-worker"
    assert all(e["name"] != "DATABASE_URL" for e in container.get("env") or [])
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (1, 1)

    role = kubectl.json("get", "role", name, "-n", namespace)
    rules = {tuple(r["resources"]): r for r in role["rules"]}
    assert rules[("secrets",)]["resourceNames"] == ["t-a"]  # the canary: the first, alone
    assert rules[("secrets",)]["verbs"] == ["get"]
    assert rules[("configmaps",)]["resourceNames"] == [f"{name}-ledger"]
    binding = kubectl.json("get", "rolebinding", name, "-n", namespace)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    targets = kubectl.json("get", "configmap", f"{name}-targets", "-n", namespace)
    assert targets["data"]["targets"] == "t-a"
    assert targets["immutable"] is True

    st = wait_for(
        lambda: (s := set_status(kubectl, namespace, "orders")).get("targets") and s,
        timeout=60,
        interval=0.5,
        what="target counts in status",
    )
    assert st["targets"]["total"] == 3
    everything = kubectl.run(
        "get", "jobs,configmaps,roles,migrationsets,events", "-n", namespace, "-o", "json"
    ).stdout
    assert "Fl33t-canary-pw" not in everything


def test_a_selector_that_matches_nothing_is_said(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    cms = configmaps(kubectl, namespace, "ghost", migset.files(2))
    kubectl.apply(fleet("ghost", cms), "-n", namespace)
    st = wait_set(kubectl, namespace, "ghost", "Failed", timeout=60)
    assert st["reason"] == "NoTargets"
    assert "app=ghost" in st["message"]
    ready = {c["type"]: c["status"] for c in st["conditions"]}
    assert ready["Ready"] == "False"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"database": {"secretRef": {"name": "db"}}}, "exactly one of spec.database"),
        ({"rollout": {"maxParallel": 0}}, "maxParallel"),
        ({"targets": {"secretSelector": {}}}, "at least one label"),
        (
            {"targets": {"schemas": {"database": {"secretRef": {"name": "db"}}}}},
            "exactly one of spec.targets.schemas.names",
        ),
        (
            {"backup": {"storage": {"persistentVolumeClaim": {"claimName": "x"}}}},
            "spec.backup is for one database",
        ),
    ],
)
def test_bad_fleet_specs_are_refused(
    kubectl: Kubectl, namespace: str, crds: list[str], change: dict[str, Any], says: str
) -> None:
    manifest = yaml.safe_load(fleet("bad", ["cm"]))
    manifest["spec"].update(change)
    refused = kubectl.apply(json.dumps(manifest), "-n", namespace, check=False)
    assert refused.returncode != 0, refused.stdout
    assert says in refused.stderr, refused.stderr


def test_a_wave_whose_pods_never_start_fails_within_the_bound(
    kubectl: Kubectl, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    """An image that cannot be pulled keeps the workers Waiting: the wave fails with a reason
    within the Job bound, and is retried with backoff, never Applying forever."""
    start_operator(
        KUBEMIGRATE_IMAGE="localhost/kubemigrate:not-there",
        KUBEMIGRATE_JOB_ACTIVE_DEADLINE_SECONDS="15",
    )
    cms = configmaps(kubectl, namespace, "stuck", migset.files(2))
    tenant_secret(kubectl, namespace, "t-a", "stuck")
    kubectl.apply(fleet("stuck", cms), "-n", namespace)

    def failed() -> dict[str, Any] | None:
        st = set_status(kubectl, namespace, "stuck")
        return st if st.get("reason") == "WaveFailed" else None

    st = wait_for(failed, timeout=120, interval=1, what="the wave to fail")
    assert "wave 0" in st["message"]
    assert st.get("failedAttempts", 0) >= 1 and st.get("nextAttemptAt")
