"""The harness is a real control plane: validation, garbage collection, versions, kopf."""

from __future__ import annotations

import gc
import re
import subprocess
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from harness.kube import Cluster, Kubectl, wait_for

pytestmark = pytest.mark.integration

PROBE_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: probes.test.kubemigrate.dev
spec:
  group: test.kubemigrate.dev
  scope: Namespaced
  names: {plural: probes, singular: probe, kind: Probe}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              mode: {type: string}
            x-kubernetes-validations:
            - rule: "self.size <= 10 || self.mode == 'big'"
              message: "size above 10 needs mode big"
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"""


@pytest.fixture(scope="module")
def probe_crd(cluster: Cluster) -> None:
    kubectl = cluster.kubectl
    kubectl.apply(PROBE_CRD)
    kubectl.run(
        "wait", "--for=condition=Established", "crd/probes.test.kubemigrate.dev", "--timeout=30s"
    )


def probe(name: str, spec: str) -> str:
    return (
        "apiVersion: test.kubemigrate.dev/v1\nkind: Probe\n"
        f"metadata: {{name: {name}}}\nspec: {spec}\n"
    )


def test_structural_schema_refuses_wrong_type(
    probe_crd: None, kubectl: Kubectl, namespace: str
) -> None:
    proc = kubectl.apply(probe("bad-type", "{size: notanumber}"), "-n", namespace, check=False)
    assert proc.returncode != 0
    assert (
        'spec.size: Invalid value: "string": spec.size in body must be of type integer'
        in proc.stderr
    )
    proc = kubectl.apply(probe("bad-min", "{size: 0}"), "-n", namespace, check=False)
    assert proc.returncode != 0
    assert "spec.size in body should be greater than or equal to 1" in proc.stderr


def test_cel_rule_refuses(probe_crd: None, kubectl: Kubectl, namespace: str) -> None:
    proc = kubectl.apply(probe("too-big", "{size: 11}"), "-n", namespace, check=False)
    assert proc.returncode != 0
    assert "size above 10 needs mode big" in proc.stderr
    ok = kubectl.apply(probe("big", "{size: 11, mode: big}"), "-n", namespace)
    assert "probe.test.kubemigrate.dev/big created" in ok.stdout


def test_owner_reference_garbage_collection(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("create", "configmap", "owner", "-n", namespace)
    uid = kubectl.json("get", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    kubectl.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  namespace: {namespace}
  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}]
""")
    kubectl.run("delete", "configmap", "owner", "-n", namespace)
    wait_for(
        lambda: (
            kubectl.run("get", "configmap", "dependent", "-n", namespace, check=False).returncode
            != 0
        ),
        timeout=60,
        what="the garbage collector to delete the dependent",
    )


def test_namespace_deletion_deletes_its_objects(kubectl: Kubectl) -> None:
    ns = "t-nsdelete"
    kubectl.run("delete", "namespace", ns, "--ignore-not-found", "--wait=true")
    kubectl.run("create", "namespace", ns)
    kubectl.run("create", "configmap", "inside", "-n", ns)
    kubectl.run("delete", "namespace", ns, "--wait=true", "--timeout=90s")
    assert kubectl.run("get", "namespace", ns, check=False).returncode != 0
    assert kubectl.run("get", "configmap", "inside", "-n", ns, check=False).returncode != 0


def test_versions_are_real(cluster: Cluster, kubectl: Kubectl) -> None:
    server = kubectl.json("version")["serverVersion"]["gitVersion"]
    assert re.fullmatch(r"v1\.3\d+\.\d+", server), server
    helm = subprocess.run(
        [str(cluster.bin_dir / "helm"), "version", "--short"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert helm.startswith("v3."), helm


# kopf's in-process runner ends its event loop with its API connections still open; they
# would be collected (with a ResourceWarning, an error here) during some later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_kopf_handler_patches_status(
    probe_crd: None,
    cluster: Cluster,
    kubectl: Kubectl,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    handler = Path(__file__).with_name("kopf_probe.py")
    with KopfRunner(["run", "--standalone", "--namespace", namespace, str(handler)]) as runner:
        kubectl.apply(probe("watched", "{size: 3}"), "-n", namespace)
        status = wait_for(
            lambda: kubectl.json("get", "probe", "watched", "-n", namespace).get("status"),
            timeout=30,
            what="kopf to patch the status",
        )
    gc.collect()  # now, under this test's filter
    assert runner.exception is None, runner.exception
    assert status["seen"] is True
    assert status["size"] == 3
