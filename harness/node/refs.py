"""What a pod refers to in the API: Secrets, ConfigMaps, its own fields, ServiceAccount tokens.

Shared by the environment (env) and the volumes (volumes) of a pod. Objects are read as
plain JSON dicts (camelCase, as in manifests) rather than client models. A missing object or key
that is not optional raises ConfigError: the kubelet retries those until they appear.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]
POD_IP = "127.0.0.1"


class ConfigError(Exception):
    """The container cannot start yet (a missing Secret, ConfigMap or key); retried."""


class PodError(Exception):
    """The pod can never run here (no command, an unsupported volume); the pod fails."""


def read_json(response: Any) -> Obj:
    """The JSON body of a call made with `_preload_content=False`."""
    data: Obj = json.loads(response.data)
    return data


class Refs:
    """Reads, once per container start, what one pod's spec points at."""

    def __init__(self, core: kubernetes.client.CoreV1Api, pod: Obj) -> None:
        self.core = core
        self.pod = pod
        self.namespace: str = pod["metadata"]["namespace"]
        self._cache: dict[tuple[str, str], dict[str, bytes] | None] = {}

    def _data(self, kind: str, name: str) -> dict[str, bytes] | None:
        """A Secret's or ConfigMap's keys as bytes, None if it does not exist."""
        if (kind, name) not in self._cache:
            read = (
                self.core.read_namespaced_secret
                if kind == "Secret"
                else self.core.read_namespaced_config_map
            )
            try:
                obj = read_json(read(name, self.namespace, _preload_content=False))
            except ApiException as e:
                if e.status != 404:
                    raise
                self._cache[kind, name] = None
            else:
                data: dict[str, bytes] = {}
                if kind == "Secret":
                    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                else:
                    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
                    data |= {
                        k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()
                    }
                self._cache[kind, name] = data
        return self._cache[kind, name]

    def object_data(self, kind: str, name: str, optional: bool | None) -> dict[str, bytes]:
        """All keys of a Secret/ConfigMap; {} if it is optional and missing."""
        data = self._data(kind, name)
        if data is None:
            if optional:
                return {}
            raise ConfigError(f'{kind.lower()} "{name}" not found')
        return data

    def key(self, kind: str, ref: Obj) -> bytes | None:
        """One key of a Secret/ConfigMap (a secretKeyRef/configMapKeyRef); None if optional."""
        data = self._data(kind, ref["name"])
        if data is not None and ref["key"] in data:
            return data[ref["key"]]
        if ref.get("optional"):
            return None
        if data is None:
            raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
        raise ConfigError(
            f"couldn't find key {ref['key']} in {kind} {self.namespace}/{ref['name']}"
        )

    def field(self, path: str) -> str:
        """A fieldRef value, as the downward API renders it."""
        meta, spec = self.pod["metadata"], self.pod["spec"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": self.namespace,
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.hostIP": POD_IP,
            "status.hostIPs": POD_IP,
            "status.podIP": POD_IP,
            "status.podIPs": POD_IP,
        }
        if path in simple:
            return str(simple[path])
        if path in ("metadata.labels", "metadata.annotations"):
            items = meta.get(path.split(".")[1]) or {}
            return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(items.items()))
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str((meta.get(m[1]) or {}).get(m[2], ""))
        raise PodError(f"unsupported fieldRef {path!r}")

    def resource(self, ref: Obj, default_container: str) -> str:
        """A resourceFieldRef value: the container's limit (else request), or 0."""
        name = ref.get("containerName") or default_container
        container: Obj = next((c for c in self.pod["spec"]["containers"] if c["name"] == name), {})
        res = container.get("resources") or {}
        what, _, kind = ref["resource"].partition(".")
        value = (res.get(what) or {}).get(kind) or (res.get("requests") or {}).get(kind)
        return str(value or "0")

    def token(self, audience: str | None, expiration: int | None) -> str:
        """A ServiceAccount token bound to this pod, minted with the TokenRequest API."""
        meta = self.pod["metadata"]
        spec: Obj = {
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "expirationSeconds": expiration or 3607,
        }
        if audience:
            spec["audiences"] = [audience]
        account = self.pod["spec"].get("serviceAccountName") or "default"
        try:
            request = kubernetes.client.AuthenticationV1TokenRequest.from_dict({"spec": spec})
            assert request is not None  # from_dict gives None only for None
            resp = self.core.create_namespaced_service_account_token(
                account, self.namespace, request, _preload_content=False
            )
        except ApiException as e:
            if e.status in (403, 404):
                raise ConfigError(f"token for serviceaccount {account}: {e.reason}") from e
            raise
        token: str = read_json(resp)["status"]["token"]
        return token
