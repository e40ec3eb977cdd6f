"""Pure builders of one wave of a fleet rollout: its target list, its ledger, the ServiceAccount
and Role its workers run as, and the Job of workers.

A wave's workers claim targets from the ledger one at a time, so the Job needs only as many
pods as targets run at once, and a worker that finds the ledger halted (too many failures, or
paused) starts nothing new. Each worker reads its targets' Secrets itself through the API, with
a token whose Role names exactly this wave's Secrets: no Secret value passes through the
operator, a Job spec or a ConfigMap.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubemigrate import fleetledger
from kubemigrate.controller.build import set_job
from kubemigrate.controller.build.jobs import MAX_NAME, WORK_DIR, Owner, labels, owner_reference
from kubemigrate.controller.build.labels import label_value
from kubemigrate.models import GROUP
from kubemigrate.models.migration_set import MigrationSetSpec
from kubemigrate.settings import Settings

COMPONENT = "fleet"
TARGETS_DIR = f"{WORK_DIR}/fleet"
TARGETS_FILE = f"{TARGETS_DIR}/{fleetledger.TARGETS_KEY}"
ROLLOUT_LABEL = f"{GROUP}/rollout"
WAVE_LABEL = f"{GROUP}/wave"
PART_LABEL = f"{GROUP}/part"
GENERATION = f"{GROUP}/generation"
"""Annotation on a wave's ledger: the set's generation when the wave started."""
CLOSED = f"{GROUP}/closed"
"""Annotation on a wave's ledger: the operator has read the finished wave's outcome."""
WORKER_RETRIES = 3
"""Worker pods the Job replaces (a worker that crashed); targets it held are re-run later."""


@dataclass(frozen=True)
class Wave:
    """One wave: its number, the rollout it belongs to, its targets and its limits."""

    rollout: str
    number: int
    targets: Sequence[str]
    workers: int
    budget: int
    paused: bool = False


def wave_name(owner: Owner, rollout: str, number: int) -> str:
    """``<set>-w<n>-<rollout>``: the same for the wave's Job, ServiceAccount, Role and binding,
    and independent of the generation, so a spec bump mid-wave finds the running wave."""
    base = f"{owner.name}-w{number}-{rollout}"
    if len(base) <= MAX_NAME - len("-targets"):
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{base[: MAX_NAME - len('-targets') - 9].rstrip('-.')}-{digest}"


def ledger_name(owner: Owner, rollout: str, number: int) -> str:
    return f"{wave_name(owner, rollout, number)}-ledger"


def targets_name(owner: Owner, rollout: str, number: int) -> str:
    return f"{wave_name(owner, rollout, number)}-targets"


def _meta(owner: Owner, name: str, wave: Wave, part: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {
            **labels(owner, COMPONENT),
            ROLLOUT_LABEL: wave.rollout,
            WAVE_LABEL: str(wave.number),
            PART_LABEL: part,
        },
        "ownerReferences": [owner_reference(owner)],
    }


def rollout_selector(owner: Owner, rollout: str, part: str) -> str:
    """The label selector of one rollout's ConfigMaps of one part (ledger or targets)."""
    return (
        f"{GROUP}/{owner.kind.lower()}={label_value(owner.name)},"
        f"{ROLLOUT_LABEL}={rollout},{PART_LABEL}={part}"
    )


def other_rollouts(owner: Owner, rollout: str) -> str:
    """The label selector of this set's wave objects that belong to any other rollout."""
    return (
        f"{GROUP}/{owner.kind.lower()}={label_value(owner.name)},"
        f"app.kubernetes.io/component={COMPONENT},{ROLLOUT_LABEL}!={rollout}"
    )


def targets_configmap(owner: Owner, wave: Wave) -> dict[str, Any]:
    """The wave's targets, one name a line, in the order the workers claim them (immutable)."""
    name = targets_name(owner, wave.rollout, wave.number)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(owner, name, wave, "targets"),
        "immutable": True,
        "data": {fleetledger.TARGETS_KEY: "\n".join(wave.targets)},
    }


def ledger_configmap(owner: Owner, wave: Wave) -> dict[str, Any]:
    """The wave's ledger, before any worker claimed a target."""
    name = ledger_name(owner, wave.rollout, wave.number)
    meta = _meta(owner, name, wave, "ledger")
    meta["annotations"] = {GENERATION: str(owner.generation)}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": fleetledger.new_ledger(wave.budget, wave.paused),
    }


def service_account(owner: Owner, wave: Wave) -> dict[str, Any]:
    name = wave_name(owner, wave.rollout, wave.number)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(owner, name, wave, "identity"),
        "automountServiceAccountToken": False,
    }


def role(owner: Owner, wave: Wave, secrets: Sequence[str]) -> dict[str, Any]:
    """Read exactly the wave's Secrets, and read and update exactly its ledger."""
    name = wave_name(owner, wave.rollout, wave.number)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(owner, name, wave, "identity"),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get"],
                "resourceNames": sorted(set(secrets)),
            },
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["get", "update"],
                "resourceNames": [ledger_name(owner, wave.rollout, wave.number)],
            },
        ],
    }


def role_binding(owner: Owner, wave: Wave) -> dict[str, Any]:
    name = wave_name(owner, wave.rollout, wave.number)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(owner, name, wave, "identity"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
    }


def _mode_args(spec: MigrationSetSpec) -> list[str]:
    targets = spec.targets
    assert targets is not None
    if targets.schemas is not None:
        ref = targets.schemas.database.secret_ref
        return ["--schemas-secret", ref.name, "--schemas-key", ref.key]
    return ["--secret-key", targets.key]


def worker_job(
    owner: Owner,
    spec: MigrationSetSpec,
    settings: Settings,
    *,
    wave: Wave,
    keys: dict[str, list[str]],
    target: str | None,
) -> dict[str, Any]:
    """The wave's Job: ``wave.workers`` pods of ``kubemigrate fleet-worker``, each claiming
    targets from the ledger until it is done or halted, under the wave's ServiceAccount."""
    name = wave_name(owner, wave.rollout, wave.number)
    job = set_job.set_job(owner, spec, settings, keys=keys, target=target, run=wave.rollout)
    job["metadata"] = _meta(owner, name, wave, "job")
    template = job["spec"]["template"]
    template["metadata"]["labels"] = dict(job["metadata"]["labels"])
    pod = template["spec"]
    container = pod["containers"][0]
    args = list(container["args"])
    args[0] = "fleet-worker"
    container["args"] = [
        *args,
        "--targets-file",
        TARGETS_FILE,
        "--ledger",
        ledger_name(owner, wave.rollout, wave.number),
        *_mode_args(spec),
    ]
    container["env"] = [e for e in container["env"] if e["name"] != "DATABASE_URL"]
    container["volumeMounts"].append(
        {"name": "targets", "mountPath": TARGETS_DIR, "readOnly": True}
    )
    pod["volumes"].append(
        {"name": "targets", "configMap": {"name": targets_name(owner, wave.rollout, wave.number)}}
    )
    pod["serviceAccountName"] = name
    pod["automountServiceAccountToken"] = True
    per_worker = math.ceil(len(wave.targets) / max(1, wave.workers))
    job["spec"].update(
        {
            "parallelism": wave.workers,
            "completions": wave.workers,
            "backoffLimit": WORKER_RETRIES,
            "activeDeadlineSeconds": settings.job_active_deadline_seconds * max(1, per_worker),
        }
    )
    return job
