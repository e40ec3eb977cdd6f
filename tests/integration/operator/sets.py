"""Building MigrationSet manifests and following them in the operator's tests."""

from __future__ import annotations

from typing import Any

import yaml

from harness import migset
from harness.kube import Kubectl, wait_for


def configmaps(kubectl: Kubectl, namespace: str, name: str, made: dict[str, str]) -> list[str]:
    """The files as ConfigMaps name-0, name-1, ... (server-side apply: no size annotation)."""
    cms = migset.configmaps(name, made)
    kubectl.run(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump_all(cms),
    )
    return [str(cm["metadata"]["name"]) for cm in cms]  # type: ignore[index]


def migration_set(name: str, configmap_names: list[str], secret: str = "db", **spec: Any) -> str:
    body: dict[str, Any] = {
        "database": {"secretRef": {"name": secret}},
        "source": {"configMaps": [{"name": n} for n in configmap_names]},
        **spec,
    }
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "MigrationSet",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def set_status(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return kubectl.json("get", "migrationset", name, "-n", namespace).get("status") or {}


def wait_set(
    kubectl: Kubectl, namespace: str, name: str, *phases: str, timeout: float = 120
) -> dict[str, Any]:
    """Wait until the set's status describes its current generation in one of phases."""

    def settled() -> dict[str, Any] | None:
        obj = kubectl.json("get", "migrationset", name, "-n", namespace)
        st = obj.get("status") or {}
        current = st.get("observedGeneration") == obj["metadata"]["generation"]
        return st if current and st.get("phase") in phases else None

    return wait_for(  # type: ignore[no-any-return]
        settled, timeout=timeout, interval=0.3, what=f"{name} to reach {'/'.join(phases)}"
    )


def patch_spec(kubectl: Kubectl, namespace: str, name: str, spec: dict[str, Any]) -> None:
    import json  # noqa: PLC0415

    kubectl.run(
        "patch",
        "migrationset",
        name,
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": spec}),
    )
