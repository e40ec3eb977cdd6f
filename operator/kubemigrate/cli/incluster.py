"""A tiny Kubernetes API client for a fleet worker's pod: GET and PUT over urllib.

The worker needs three calls (read a Secret, read and replace its ledger ConfigMap), so it does
not load the ``kubernetes`` library: it finds the API server the way client-go does
(KUBERNETES_SERVICE_HOST/PORT), authenticates with the ServiceAccount token (read at each call,
so a rotated bound token is picked up), and trusts the mounted ``ca.crt``. A failing call raises
ApiError with the status and the server's message, which names objects, never their data.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT = 30.0
"""Seconds a call may take."""
ATTEMPTS = 5
"""Tries of a call the server could not answer (unreachable, 5xx, 429)."""


class ApiError(Exception):
    """A call that failed: its HTTP status (0: no answer) and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status or 'no answer'}: {message}")
        self.status = status


class NotInCluster(Exception):
    """No API server or no token: the worker does not run in a pod."""


@dataclass(frozen=True)
class InCluster:
    """The API server as a pod's ServiceAccount sees it."""

    server: str
    token_file: Path
    ca_file: Path | None
    namespace: str | None

    @classmethod
    def from_environment(cls, directory: Path = SERVICE_ACCOUNT_DIR) -> InCluster:
        """The pod's API server and ServiceAccount, or NotInCluster."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        token = directory / "token"
        if not host or not token.is_file():
            raise NotInCluster(f"no KUBERNETES_SERVICE_HOST or no token in {directory}")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        ca = directory / "ca.crt"
        ns = directory / "namespace"
        namespace = ns.read_text(encoding="utf-8").strip() if ns.is_file() else None
        return cls(server, token, ca if ca.is_file() else None, namespace or None)

    def get(self, path: str) -> dict[str, Any]:
        """The object at path (``/api/v1/namespaces/...``)."""
        return self._call("GET", path, None)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the object at path with body; 409 if its resourceVersion is stale."""
        return self._call("PUT", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        for attempt in range(ATTEMPTS):
            try:
                return self._once(method, path, body)
            except ApiError as exc:
                if not _transient(exc.status) or attempt == ATTEMPTS - 1:
                    raise
            time.sleep(min(8.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (an https URL we build)
            self.server + path, data=data, method=method
        )
        request.add_header("Authorization", f"Bearer {self._token()}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=TIMEOUT, context=self._tls()
            ) as response:
                loaded: dict[str, Any] = json.loads(response.read())
                return loaded
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, _status_message(exc)) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ApiError(0, f"{method} {path}: {type(exc).__name__}") from None

    def _token(self) -> str:
        return self.token_file.read_text(encoding="utf-8").strip()

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


def object_path(namespace: str, plural: str, name: str) -> str:
    """The path of a core (v1) object: ``/api/v1/namespaces/<ns>/<plural>/<name>``."""
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/{plural}/{quote(name, safe='')}"


def _transient(status: int) -> bool:
    return status in {0, 429} or status >= 500


def _status_message(exc: urllib.error.HTTPError) -> str:
    """The message of the server's Status object (it names the object, never its data)."""
    try:
        status = json.loads(exc.read() or b"{}")
        message = status.get("message") if isinstance(status, dict) else None
    except (ValueError, OSError):
        message = None
    return str(message or exc.reason)[:300]
