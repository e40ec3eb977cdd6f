"""Pure builders of the Jobs the operator runs: preflight, backup and restore.

Every Job runs the project's own CLI from the operator's image, takes the database URL from the
user's Secret through `env` (so it never appears in the Job spec), reports its result as JSON in
its termination message, and belongs to the resource it serves (garbage-collected with it).
Job pods get no ServiceAccount token: they talk to PostgreSQL, never to the Kubernetes API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubemigrate.controller.build.labels import label_value
from kubemigrate.jobresult import TERMINATION_LOG
from kubemigrate.models import API_VERSION, GROUP
from kubemigrate.settings import Settings

WORK_DIR = "/var/run/kubemigrate"
CONTAINER = "kubemigrate"
MAX_NAME = 63


@dataclass(frozen=True)
class Owner:
    """The custom resource a Job belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str
    generation: int = 0

    @classmethod
    def of(cls, kind: str, obj: Mapping[str, Any]) -> Owner:
        """The owner a resource's body describes (its generation defaults to 1)."""
        meta = obj["metadata"]
        return cls(
            kind, meta["name"], meta["namespace"], meta["uid"], int(meta.get("generation", 1))
        )


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable a Job takes from a Secret's key (the value never leaves it)."""

    name: str
    secret: str
    key: str


@dataclass(frozen=True)
class JobRequest:
    """What differs between Jobs: their purpose, CLI arguments, volumes and deadline."""

    component: str
    args: list[str]
    secret_name: str
    secret_key: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    active_deadline_seconds: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    secret_env: list[SecretEnv] = field(default_factory=list)
    attempt: int = 0
    owned: bool = True
    """False for a Job that must outlive its resource (a backup's file cleanup on deletion)."""


def job_name(owner: Owner, component: str, attempt: int = 0) -> str:
    """A deterministic name per owner, component, generation and attempt, so a restarted
    operator adopts the Job it already started instead of starting a second one."""
    base = f"{owner.name}-{component}-g{owner.generation}" + (f"-{attempt}" if attempt else "")
    if len(base) <= MAX_NAME:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{base[: MAX_NAME - 9].rstrip('-.')}-{digest}"


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(owner: Owner, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kubemigrate",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "kubemigrate",
        f"{GROUP}/{owner.kind.lower()}": label_value(owner.name),
    }


def build_job(owner: Owner, request: JobRequest, settings: Settings) -> dict[str, Any]:
    """The Job manifest for request, owned by owner."""
    env: list[dict[str, Any]] = []
    if request.secret_name:  # a Job that never connects (file cleanup) needs no Secret
        env.append(
            {
                "name": "DATABASE_URL",
                "valueFrom": {
                    "secretKeyRef": {"name": request.secret_name, "key": request.secret_key}
                },
            }
        )
    env += [{"name": k, "value": v} for k, v in sorted(request.extra_env.items())]
    env += [
        {"name": e.name, "valueFrom": {"secretKeyRef": {"name": e.secret, "key": e.key}}}
        for e in request.secret_env
    ]
    pod_labels = labels(owner, request.component)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": settings.image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": ["kubemigrate"],
                "args": [*request.args, "--termination-log", TERMINATION_LOG],
                "env": env,
                "terminationMessagePath": TERMINATION_LOG,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"memory": "512Mi"},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *request.mounts],  # noqa: S108
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *request.volumes],
    }
    if settings.job_service_account:
        pod_spec["serviceAccountName"] = settings.job_service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(owner, request.component, request.attempt),
            "namespace": owner.namespace,
            "labels": pod_labels,
            "ownerReferences": [owner_reference(owner)] if request.owned else [],
        },
        "spec": {
            "backoffLimit": settings.job_backoff_limit,
            "activeDeadlineSeconds": request.active_deadline_seconds
            or settings.job_active_deadline_seconds,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds_after_finished,
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def job_finished(job: dict[str, Any]) -> bool | None:
    """True when the Job completed, False when it failed, None while it runs."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return True
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return False
    return None


def job_failure(job: dict[str, Any]) -> str:
    """Why the Job controller failed the Job (deadline, backoff limit), in a sentence."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Failed", "FailureTarget") and cond.get("status") == "True":
            return f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}".strip(": ")
    return "the Job failed"
