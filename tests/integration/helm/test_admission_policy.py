"""The chart's ValidatingAdmissionPolicy, enforced by the real API server: the operator's
ServiceAccount may create the Jobs the operator builds, and nothing else a leaked token could
use (another ServiceAccount, its token, Secret or host volumes, another image or command, host
namespaces, privileged containers). Requests are made as the ServiceAccount (`--as`), with
server-side dry runs, so admission runs in full and nothing is created."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from harness.kube import Kubectl, wait_for
from integration.helm.helm_helpers import CHART, Helm
from kubemigrate.controller.build import fleet_wave
from kubemigrate.controller.build.backup_jobs import backup_request, cleanup_request, place_of
from kubemigrate.controller.build.jobs import JobRequest, Owner, build_job
from kubemigrate.controller.build.preflight import job_request
from kubemigrate.controller.build.set_job import set_job
from kubemigrate.models.backup import DatabaseBackupSpec
from kubemigrate.models.migration import MigrationSpec
from kubemigrate.models.migration_set import MigrationSetSpec
from kubemigrate.settings import Settings

pytestmark = pytest.mark.integration

RELEASE = "km"
IMAGE = "ghcr.io/kubemigrate/kubemigrate:0.1.0"  # the chart's default Job image


@pytest.fixture
def installed(helm: Helm, kubectl: Kubectl, namespace: str, crds: list[str]) -> Iterator[str]:
    """The chart (defaults: namespace scope, the policy on); the operator's user name."""
    helm.run(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "crds.create=false",
        "--set",
        "podAnnotations.kubemigrate\\.dev/node-runner=skip",
    )
    user = f"system:serviceaccount:{namespace}:{RELEASE}-kubemigrate"
    try:
        # A new policy takes effect once the API server has loaded it (about a second).
        probe = copy.deepcopy(_jobs(namespace)["preflight"])
        _pod(probe).update(hostPID=True)
        wait_for(
            lambda: _create(kubectl, probe, namespace, user),
            timeout=30,
            what="the admission policy to take effect",
        )
        yield user
    finally:
        helm.run("uninstall", RELEASE, "--namespace", namespace, check=False)


def _jobs(namespace: str) -> dict[str, dict[str, Any]]:
    """The operator's own Jobs, as it builds them (no owner: the dry run needs none)."""
    settings = Settings(image=IMAGE)
    owner = Owner("Migration", "m1", namespace, "uid-1", 1)
    migration = MigrationSpec.model_validate(
        {"database": {"secretRef": {"name": "db"}}, "version": "1", "sql": "SELECT 1;"}
    )
    backup = DatabaseBackupSpec.model_validate(
        {
            "database": {"secretRef": {"name": "db"}},
            "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
        }
    )
    requests: dict[str, JobRequest] = {
        "preflight": job_request(owner, migration, 600, 0),
        "backup": backup_request(backup, place_of(backup, namespace, "nightly", "uid-2")),
        "cleanup": cleanup_request(place_of(backup, namespace, "nightly", "uid-2")),
    }
    built = {name: build_job(owner, request, settings) for name, request in requests.items()}
    set_owner = Owner("MigrationSet", "s1", namespace, "uid-3", 1)
    for name, source in (
        ("set-configmaps", {"configMaps": [{"name": "a"}, {"name": "b"}]}),
        ("set-image", {"image": {"reference": "registry.example/app:1", "path": "/app/sql"}}),
    ):
        spec = MigrationSetSpec.model_validate(
            {"database": {"secretRef": {"name": "db"}}, "source": source}
        )
        keys = {"a": ["1_x.up.sql"], "b": ["2_y.up.sql"]} if "configMaps" in source else {}
        built[name] = set_job(set_owner, spec, settings, keys=keys, target=None, run="r1")
    fleet = MigrationSetSpec.model_validate(
        {
            "targets": {"secretSelector": {"matchLabels": {"app": "orders"}}},
            "source": {"configMaps": [{"name": "a"}]},
        }
    )
    wave = fleet_wave.Wave("r1", 0, ["t-a", "t-b"], 2, 0)
    built["fleet-wave"] = fleet_wave.worker_job(
        set_owner, fleet, settings, wave=wave, keys={"a": ["1_x.up.sql"]}, target=None
    )
    for job in built.values():
        job["metadata"]["ownerReferences"] = []
    return built


def _init(job: dict[str, Any]) -> dict[str, Any]:
    return _pod(job)["initContainers"][0]  # type: ignore[no-any-return]


def _create(kubectl: Kubectl, job: dict[str, Any], namespace: str, user: str | None) -> str:
    """'' when the API server admits the Job, else its refusal."""
    args = ["create", "--dry-run=server", "-n", namespace, "-f", "-"]
    if user:
        args.append(f"--as={user}")
    proc = kubectl.run(*args, input=yaml.safe_dump(job), check=False)
    return "" if proc.returncode == 0 else proc.stderr


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


Change = Callable[[dict[str, Any]], None]
HOSTILE: dict[str, tuple[Change, str]] = {
    "token-mounted": (
        lambda j: _pod(j).update(automountServiceAccountToken=True),
        "automountServiceAccountToken",
    ),
    "other-service-account": (
        lambda j: _pod(j).update(serviceAccountName="cluster-admin-sa"),
        "serviceAccountName",
    ),
    "secret-volume": (
        lambda j: _pod(j)["volumes"].append({"name": "s", "secret": {"secretName": "any"}}),
        "volumes",
    ),
    "host-path": (
        lambda j: _pod(j)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "volumes",
    ),
    "projected-token": (
        lambda j: _pod(j)["volumes"].append(
            {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}
        ),
        "volumes",
    ),
    "other-image": (lambda j: _pod(j)["containers"][0].update(image="evil:1"), "image"),
    "other-command": (lambda j: _pod(j)["containers"][0].update(command=["sh", "-c"]), "command"),
    "env-from-secret": (
        lambda j: _pod(j)["containers"][0].update(envFrom=[{"secretRef": {"name": "any"}}]),
        "envFrom",
    ),
    "init-container": (
        lambda j: _pod(j).update(initContainers=[{"name": "i", "image": "evil:1"}]),
        "initContainers",
    ),
    "projected-secret": (
        lambda j: _pod(j)["volumes"].append(
            {"name": "p", "projected": {"sources": [{"secret": {"name": "any"}}]}}
        ),
        "volumes",
    ),
    "host-pid": (lambda j: _pod(j).update(hostPID=True), "host"),
    "privileged": (
        lambda j: _pod(j)["containers"][0]["securityContext"].update(
            privileged=True, allowPrivilegeEscalation=True
        ),
        "privileged",
    ),
}


def test_the_operators_own_jobs_are_admitted(
    kubectl: Kubectl, namespace: str, installed: str
) -> None:
    for name, job in _jobs(namespace).items():
        assert _create(kubectl, job, namespace, installed) == "", name


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_any_other_job_from_the_operator_is_refused_naming_the_rule(
    kubectl: Kubectl, namespace: str, installed: str, case: str
) -> None:
    change, names = HOSTILE[case]
    job = copy.deepcopy(_jobs(namespace)["preflight"])
    change(job)
    refusal = _create(kubectl, job, namespace, installed)
    assert "ValidatingAdmissionPolicy" in refusal, refusal
    assert names in refusal, refusal
    assert _create(kubectl, job, namespace, None) == ""  # other users are not the policy's


IMAGE_SOURCE_HOSTILE: dict[str, Change] = {
    "init-other-command": lambda j: _init(j).update(command=["sh", "-c", "id", "/tmp/"]),
    "init-env-from-secret": lambda j: _init(j).update(
        env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "any", "key": "k"}}}]
    ),
    "init-other-volume": lambda j: (
        _pod(j)["volumes"].append({"name": "other", "persistentVolumeClaim": {"claimName": "c"}}),
        _init(j)["volumeMounts"].append({"name": "other", "mountPath": "/x"}),
    ),
    "init-privileged": lambda j: _init(j)["securityContext"].update(
        privileged=True, allowPrivilegeEscalation=True
    ),
    "a-second-init": lambda j: _pod(j)["initContainers"].append(
        {**_init(j), "name": "steal", "image": "evil:1"}
    ),
}


FLEET_HOSTILE: dict[str, tuple[Change, str]] = {
    "another-accounts-token": (
        lambda j: _pod(j).update(serviceAccountName="cluster-admin-sa"),
        "automountServiceAccountToken",
    ),
    "a-token-for-another-command": (
        lambda j: _pod(j)["containers"][0].update(args=["apply", "/sql"]),
        "automountServiceAccountToken",
    ),
    "a-secret-volume": (
        lambda j: _pod(j)["volumes"].append({"name": "s", "secret": {"secretName": "any"}}),
        "volumes",
    ),
}


@pytest.mark.parametrize("case", FLEET_HOSTILE, ids=list(FLEET_HOSTILE))
def test_a_fleet_waves_token_is_admitted_only_for_its_own_account(
    kubectl: Kubectl, namespace: str, installed: str, case: str
) -> None:
    """A wave's workers carry a token, of the ServiceAccount named as their Job only."""
    change, names = FLEET_HOSTILE[case]
    job = copy.deepcopy(_jobs(namespace)["fleet-wave"])
    change(job)
    refusal = _create(kubectl, job, namespace, installed)
    assert "ValidatingAdmissionPolicy" in refusal, refusal
    assert names in refusal, refusal


@pytest.mark.parametrize("case", IMAGE_SOURCE_HOSTILE, ids=list(IMAGE_SOURCE_HOSTILE))
def test_an_image_sources_init_container_is_admitted_only_as_the_operator_builds_it(
    kubectl: Kubectl, namespace: str, installed: str, case: str
) -> None:
    job = copy.deepcopy(_jobs(namespace)["set-image"])
    IMAGE_SOURCE_HOSTILE[case](job)
    refusal = _create(kubectl, job, namespace, installed)
    assert "ValidatingAdmissionPolicy" in refusal, refusal
    assert "initContainers" in refusal, refusal
