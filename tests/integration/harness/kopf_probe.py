"""A test-only kopf operator: on a new Probe, patch status.seen through the status subresource."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.create("test.kubemigrate.dev", "v1", "probes")
def seen(spec: dict[str, Any], patch: kopf.Patch, **_: Any) -> None:
    patch.status["seen"] = True
    patch.status["size"] = spec.get("size")


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # The kubernetes client fixes its default kubeconfig path at import time; read $KUBECONFIG now.
    return kopf.login_with_kubeconfig(**kwargs)
