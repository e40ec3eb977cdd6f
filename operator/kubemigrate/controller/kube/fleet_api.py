"""The API calls of a fleet rollout: Secret names by selector, a wave's objects, its ledgers.

Secrets are listed as metadata only (``PartialObjectMetadataList``), so selecting a fleet's
databases never brings their values into the operator's memory.
"""

from __future__ import annotations

import json
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from kubemigrate.controller.kube.api import Forbidden, KubeApi, refusal_of

METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
PAGE = 500


class FleetApi:
    """A fleet's calls, over the operator's client."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(api.core.api_client)

    async def secret_names(self, namespace: str, selector: str) -> list[str]:
        """Names of the Secrets matching selector, sorted; values are never fetched."""
        names: list[str] = []
        token = ""
        while True:
            try:
                page = await self.api._call(self._secret_page, namespace, selector, token)
            except ApiException as e:
                if e.status == 403:
                    raise Forbidden(str(e.reason)) from e
                raise
            names += [i["metadata"]["name"] for i in page.get("items") or []]
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return sorted(names)

    def _secret_page(self, namespace: str, selector: str, token: str) -> dict[str, Any]:
        response = self.api.core.list_namespaced_secret(
            namespace,
            label_selector=selector,
            limit=PAGE,
            _continue=token or None,
            _headers={"Accept": METADATA_ONLY},
            _preload_content=False,
        )
        result: dict[str, Any] = json.loads(cast(Any, response).data)
        return result

    async def configmaps(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Every ConfigMap matching selector, whole."""
        found = await self.api._call(
            self.api.core.list_namespaced_config_map, namespace, label_selector=selector
        )
        items = self.api.serialized(found).get("items") or []
        return list(items)

    async def configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's data, or None when it is gone."""
        found = await self.api._maybe(self.api.core.read_namespaced_config_map, name, namespace)
        return None if found is None else dict(found.get("data") or {})

    async def jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        found = await self.api._call(
            self.api.batch.list_namespaced_job, namespace, label_selector=selector
        )
        return list(self.api.serialized(found).get("items") or [])

    async def retire(self, namespace: str, selector: str) -> int:
        """Delete what the selector matches of a fleet's wave objects; how many were found."""
        listings = (
            (self.api.batch.list_namespaced_job, self.api.batch.delete_namespaced_job),
            (self.api.core.list_namespaced_config_map, self.api.core.delete_namespaced_config_map),
            (self.rbac.list_namespaced_role_binding, self.rbac.delete_namespaced_role_binding),
            (self.rbac.list_namespaced_role, self.rbac.delete_namespaced_role),
            (
                self.api.core.list_namespaced_service_account,
                self.api.core.delete_namespaced_service_account,
            ),
        )
        count = 0
        for listing, delete in listings:
            found = await self.api._call(listing, namespace, label_selector=selector)
            for item in self.api.serialized(found).get("items") or []:
                count += 1
                try:
                    await self.api._call(
                        delete, item["metadata"]["name"], namespace, propagation_policy="Background"
                    )
                except ApiException as e:
                    if e.status != 404:
                        raise
        return count

    async def patch_configmap(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a ConfigMap (a ledger's pause flag, its closed mark); gone is fine."""
        try:
            await self.api._call(self.api.core.patch_namespaced_config_map, name, namespace, patch)
        except ApiException as e:
            if e.status != 404:
                raise

    async def ensure(self, manifest: dict[str, Any]) -> None:
        """Create a wave's object unless it exists (its content is deterministic)."""
        ns = manifest["metadata"]["namespace"]
        create: Any = {
            "ConfigMap": self.api.core.create_namespaced_config_map,
            "ServiceAccount": self.api.core.create_namespaced_service_account,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }[manifest["kind"]]
        try:
            await self.api._call(create, ns, manifest)
        except ApiException as e:
            if (refused := refusal_of(e)) is not None:
                raise refused from e
            if e.status != 409:
                raise
