"""An in-memory Kubernetes API for the flows' tests: the same methods as `KubeApi`, over dicts.

Status writes are applied as the API server applies them (a JSON merge patch onto the stored
object, a new resourceVersion, the whole object returned), so a test reads the status a flow
left behind exactly as a user would, and every patch sent is kept for the tests that check the
JSON itself. Jobs never run: a test finishes them with `finish_job`.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.kube.api import NotFound
from kubemigrate.controller.metrics import Metrics
from kubemigrate.settings import Settings

Key = tuple[str, str]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


class FakeKube:
    """Secrets, ConfigMaps, claims, our custom objects, Jobs and their pods, in memory."""

    def __init__(self) -> None:
        self.secrets: dict[Key, dict[str, str]] = {}
        self.configmaps: dict[Key, dict[str, str]] = {}
        self.claims: set[Key] = set()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.jobs: dict[Key, dict[str, Any]] = {}
        self.pods: dict[Key, list[dict[str, Any]]] = {}
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.deleted_jobs: list[Key] = []
        self._version = 100
        self._uids = 0

    # -- what a test sets up and looks at ----------------------------------------------------

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def add(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store obj as the API server would (uid, generation, resourceVersion); the body a
        daemon would be given."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        self._uids += 1
        meta.setdefault("uid", f"uid-{meta['name']}-{self._uids}")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", f"2024-12-20T10:00:{self._uids:02d}Z")
        meta["resourceVersion"] = self._next_version()
        self.objects[(plural, meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def body(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        """The object as the watch would deliver it now."""
        return copy.deepcopy(self.objects[(plural, namespace, name)])

    def status(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(plural, namespace, name)].get("status") or {})

    def update_spec(self, plural: str, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
        """A user's change of spec: a new generation."""
        obj = self.objects[(plural, namespace, name)]
        obj["spec"].update(spec)
        obj["metadata"]["generation"] += 1
        obj["metadata"]["resourceVersion"] = self._next_version()
        return copy.deepcopy(obj)

    def finish_job(
        self,
        namespace: str,
        name: str,
        *,
        ok: bool,
        message: str | None = None,
        reason: str = "BackoffLimitExceeded",
    ) -> None:
        """The Job ends: its condition, and its pod's termination message (if it wrote one)."""
        job = self.jobs[(namespace, name)]
        if ok:
            conditions = [{"type": "Complete", "status": "True"}]
        else:
            conditions = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": reason,
                    "message": f"Job failed: {reason}",
                }
            ]
        job["status"] = {"conditions": conditions}
        terminated: dict[str, Any] = {
            "exitCode": 0 if ok else 1,
            "finishedAt": "2024-12-20T10:05:00Z",
        }
        if message is not None:
            terminated["message"] = message
        self.pods[(namespace, name)] = [
            {
                "metadata": {"name": f"{name}-pod"},
                "status": {
                    "phase": "Succeeded" if ok else "Failed",
                    "containerStatuses": [
                        {"name": "kubemigrate", "state": {"terminated": terminated}}
                    ],
                },
            }
        ]

    def job_args(self, namespace: str, name: str) -> list[str]:
        return list(
            self.jobs[(namespace, name)]["spec"]["template"]["spec"]["containers"][0]["args"]
        )

    # -- KubeApi ---------------------------------------------------------------------------

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        data = self.secrets.get((namespace, name))
        if data is None:
            raise NotFound(f"Secret {namespace}/{name} not found")
        if key not in data:
            raise NotFound(f"Secret {namespace}/{name} has no key {key!r}", key=key)
        return data[key]

    async def configmap_value(self, namespace: str, name: str, key: str) -> str:
        data = self.configmaps.get((namespace, name))
        if data is None:
            raise NotFound(f"ConfigMap {namespace}/{name} not found")
        if key not in data:
            raise NotFound(f"ConfigMap {namespace}/{name} has no key {key!r}", key=key)
        return data[key]

    async def ensure_configmap(self, manifest: dict[str, Any]) -> None:
        meta = manifest["metadata"]
        self.configmaps.setdefault(
            (meta["namespace"], meta["name"]), dict(manifest.get("data") or {})
        )

    async def ensure_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        key = (meta["namespace"], meta["name"])
        if key not in self.jobs:
            self.jobs[key] = {**copy.deepcopy(manifest), "status": {}}
        return copy.deepcopy(self.jobs[key])

    async def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.jobs.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def delete_job(self, namespace: str, name: str) -> None:
        self.deleted_jobs.append((namespace, name))
        self.jobs.pop((namespace, name), None)
        self.pods.pop((namespace, name), None)

    async def delete_jobs(self, namespace: str, selector: str) -> None:
        label, _, value = selector.partition("=")
        for key, job in list(self.jobs.items()):
            if key[0] == namespace and job["metadata"]["labels"].get(label) == value:
                await self.delete_job(*key)

    async def job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.pods.get((namespace, job_name), []))

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        json.dumps(status)  # what goes over the wire must be JSON
        self.patches.append((plural, name, copy.deepcopy(status)))
        obj = self.objects.get((plural, namespace, name))
        if obj is None:
            return None
        obj["status"] = merge_patch(obj.get("status") or {}, status)
        obj["metadata"]["resourceVersion"] = self._next_version()
        return copy.deepcopy(obj)

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def list_custom(
        self, plural: str, namespace: str, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        label, _, value = label_selector.partition("=")
        return [
            copy.deepcopy(o)
            for (p, ns, _), o in self.objects.items()
            if p == plural
            and ns == namespace
            and (not label or (o["metadata"].get("labels") or {}).get(label) == value)
        ]

    async def create_custom(self, plural: str, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        existing = self.objects.get((plural, meta["namespace"], meta["name"]))
        return copy.deepcopy(existing) if existing is not None else self.add(plural, manifest)

    async def delete_custom(self, plural: str, namespace: str, name: str) -> None:
        self.objects.pop((plural, namespace, name), None)

    async def pvc_exists(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.claims


class Recorder:
    """The Events a step posts and the daemons it wakes."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.woken: list[str] = []

    def emit(self, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def ctx(kube: FakeKube, recorder: Recorder) -> StepContext:
    """A step's context over the fake API, with its own metrics registry."""
    return StepContext(
        kube,
        Settings(image="kubemigrate:test"),  # type: ignore[arg-type]
        recorder.emit,
        Metrics(),
        logger=logging.getLogger("test"),
        wake=recorder.woken.append,
    )
