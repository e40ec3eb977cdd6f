"""The few Kubernetes API calls the operator makes, as async functions over the official client.

The client is synchronous, so every call runs in a worker thread and kopf's event loop never
blocks. Reads that may legitimately find nothing return None instead of raising; the errors
callers act on are our own (`NotFound`, `Forbidden`), so no other module needs the client's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from kubemigrate.models import GROUP, VERSION

T = TypeVar("T")


def make_client() -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig $KUBECONFIG names.

    The client fixes its default kubeconfig path at import time, so the path is read here."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=config)
        return kubernetes.client.ApiClient(config)
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")  # noqa: PTH111
    return kubernetes.config.new_client_from_config(config_file=path)


class NotFound(LookupError):
    """A referenced object does not exist, or (``key`` set) has no such key."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key

    def reason(self, kind: str) -> str:
        """The status reason: ``SecretNotFound``, or ``SecretKeyNotFound`` for a missing key."""
        return f"{kind}KeyNotFound" if self.key is not None else f"{kind}NotFound"


class Forbidden(PermissionError):
    """The API server refused a create (403), e.g. in a namespace that is being deleted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Invalid(ValueError):
    """The API server refused a create as invalid (422) or too large (413): the same request
    will never pass. The message is the API server's, which names the object and the rule."""


def refusal_of(e: ApiException) -> Exception | None:
    """Our error for a refused create, or None for any other failure."""
    if e.status == 403:
        return Forbidden(str(e.reason))
    if e.status in (413, 422):
        return Invalid(_api_message(e))
    return None


def _api_message(e: ApiException) -> str:
    """The Status message of an API error (its body), else its reason phrase."""
    try:
        message = json.loads(e.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or e.reason or f"HTTP {e.status}")


class KubeApi:
    """Typed wrappers of the calls the controller needs."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.core = kubernetes.client.CoreV1Api(client)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self._client = client

    def serialized(self, obj: Any) -> dict[str, Any]:
        """A client model object as plain JSON data."""
        return cast(dict[str, Any], self._client.sanitize_for_serialization(obj))

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _maybe(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        try:
            obj = await self._call(fn, *args)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return self._client.sanitize_for_serialization(obj)

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded; NotFound names what is missing (never the value)."""
        secret = await self._maybe(self.core.read_namespaced_secret, name, namespace)
        if secret is None:
            raise NotFound(f"Secret {namespace}/{name} not found")
        data = secret.get("data") or {}
        if key not in data:
            raise NotFound(f"Secret {namespace}/{name} has no key {key!r}", key=key)
        return base64.b64decode(data[key]).decode()

    async def configmap_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a ConfigMap."""
        cm = await self._maybe(self.core.read_namespaced_config_map, name, namespace)
        if cm is None:
            raise NotFound(f"ConfigMap {namespace}/{name} not found")
        data = cm.get("data") or {}
        if key not in data:
            raise NotFound(f"ConfigMap {namespace}/{name} has no key {key!r}", key=key)
        return str(data[key])

    async def configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        """Every key of a ConfigMap's data (a MigrationSet's files); NotFound if it is missing."""
        cm = await self._maybe(self.core.read_namespaced_config_map, name, namespace)
        if cm is None:
            raise NotFound(f"ConfigMap {namespace}/{name} not found")
        return {str(k): str(v) for k, v in (cm.get("data") or {}).items()}

    async def ensure_configmap(self, manifest: dict[str, Any]) -> None:
        """Create the ConfigMap unless one of that name exists (its content is deterministic).
        Refused: Invalid or Forbidden."""
        try:
            await self._call(
                self.core.create_namespaced_config_map, manifest["metadata"]["namespace"], manifest
            )
        except ApiException as e:
            if (refused := refusal_of(e)) is not None:
                raise refused from e
            if e.status != 409:
                raise

    async def ensure_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the Job, or adopt the one of that name a previous run started."""
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            created = await self._call(self.batch.create_namespaced_job, ns, manifest)
            return self._client.sanitize_for_serialization(created)
        except ApiException as e:
            if (refused := refusal_of(e)) is not None:
                raise refused from e
            if e.status != 409:
                raise
        existing = await self.job(ns, name)
        if existing is None:  # deleted between the two calls: try once more
            return await self.ensure_job(manifest)
        return existing

    async def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._maybe(self.batch.read_namespaced_job, name, namespace)

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await self._call(
                self.batch.delete_namespaced_job, name, namespace, propagation_policy="Background"
            )
        except ApiException as e:
            if e.status != 404:
                raise

    async def delete_jobs(self, namespace: str, selector: str) -> None:
        """Delete every Job matching a label selector, with their pods."""
        await self._call(
            self.batch.delete_collection_namespaced_job,
            namespace,
            label_selector=selector,
            propagation_policy="Background",
        )

    async def job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        pods = await self._call(
            self.core.list_namespaced_pod, namespace, label_selector=f"job-name={job_name}"
        )
        return self._client.sanitize_for_serialization(pods).get("items", [])

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource; None if the object is gone."""
        try:
            obj = await self._call(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return cast(dict[str, Any], obj)

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._maybe(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )

    async def list_custom(
        self, plural: str, namespace: str, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        """Every object of one of our kinds in namespace (matching label_selector, if set)."""
        found = await self._call(
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            label_selector=label_selector,
        )
        return list(cast(dict[str, Any], found).get("items") or [])

    async def create_custom(self, plural: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create one of our objects, or return the one of that name that already exists."""
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            return cast(
                dict[str, Any],
                await self._call(
                    self.custom.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    ns,
                    plural,
                    manifest,
                ),
            )
        except ApiException as e:
            if e.status != 409:
                raise
        existing = await self.get_custom(plural, ns, name)
        if existing is None:  # deleted between the two calls: try once more
            return await self.create_custom(plural, manifest)
        return existing

    async def delete_custom(self, plural: str, namespace: str, name: str) -> None:
        try:
            await self._call(
                self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
        except ApiException as e:
            if e.status != 404:
                raise

    async def pvc_exists(self, namespace: str, name: str) -> bool:
        claim = await self._maybe(
            self.core.read_namespaced_persistent_volume_claim, name, namespace
        )
        return claim is not None
