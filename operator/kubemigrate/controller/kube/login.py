"""How the operator logs in to the API server: as the pod's ServiceAccount, found the way
client-go finds it (KUBERNETES_SERVICE_HOST/PORT and the mounted token), else via $KUBECONFIG.

kopf's own service-account login assumes the DNS name kubernetes.default.svc, which is not
resolvable everywhere (our local cluster has no DNS); the environment variables always work.
The token file is read at every login, so a rotated (bound) token is picked up after a 401.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kopf

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster(directory: Path = SERVICE_ACCOUNT_DIR) -> kopf.ConnectionInfo | None:
    """The pod's ServiceAccount connection, or None outside a pod."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    token_file = directory / "token"
    if not host or not token_file.exists():
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    ca = directory / "ca.crt"
    namespace = directory / "namespace"
    return kopf.ConnectionInfo(
        server=server,
        ca_path=str(ca) if ca.exists() else None,
        token=token_file.read_text().strip() or None,
        default_namespace=namespace.read_text().strip() if namespace.exists() else None,
    )


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The ServiceAccount in a pod, else the kubeconfig $KUBECONFIG names now."""
    return in_cluster() or kopf.login_with_kubeconfig(**kwargs)
