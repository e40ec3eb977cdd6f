"""Fleet MigrationSets in the operator's tests: their manifests, following a rollout, and reading
what each tenant's database (or schema) holds."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import psycopg
import yaml
from psycopg import sql

from harness import tenants
from harness.kube import Cluster, Kubectl, wait_for
from harness.tenants import Tenant

SETTLED = ("Succeeded", "Failed", "Halted")
"""The phases a rollout rests in."""
HISTORY_ROW = "id, run_id, version, kind, status, started_at, finished_at"


def fleet_set(
    name: str,
    configmap_names: list[str],
    *,
    targets: dict[str, Any] | None = None,
    rollout: dict[str, Any] | None = None,
    **spec: Any,
) -> str:
    """A MigrationSet over a fleet: by default every Secret labelled as the tenants are."""
    body: dict[str, Any] = {
        "targets": targets or {"secretSelector": {"matchLabels": dict(tenants.SECRET_LABEL)}},
        "source": {"configMaps": [{"name": n} for n in configmap_names]},
        **spec,
    }
    if rollout is not None:
        body["rollout"] = rollout
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "MigrationSet",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def schema_targets(
    secret: str, *, names: list[str] | None = None, query: str | None = None
) -> dict[str, Any]:
    """spec.targets for schemas in the database of Secret secret (key url)."""
    schemas: dict[str, Any] = {"database": {"secretRef": {"name": secret}}}
    if names is not None:
        schemas["names"] = names
    if query is not None:
        schemas["query"] = query
    return {"schemas": schemas}


def apply_secrets(kubectl: Kubectl, namespace: str, secrets: list[dict[str, Any]]) -> None:
    kubectl.run("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(secrets))


def fleet(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return kubectl.json("get", "migrationset", name, "-n", namespace)  # type: ignore[no-any-return]


def wait_rollout(
    kubectl: Kubectl, namespace: str, name: str, *phases: str, timeout: float = 240
) -> dict[str, Any]:
    """Wait until the set's status describes its current generation in one of phases (default:
    any phase a rollout rests in) with no target running."""
    wanted = phases or SETTLED

    def settled() -> dict[str, Any] | None:
        obj = fleet(kubectl, namespace, name)
        st = obj.get("status") or {}
        current = st.get("observedGeneration") == obj["metadata"]["generation"]
        running = (st.get("targets") or {}).get("running")
        return st if current and st.get("phase") in wanted and not running else None

    return wait_for(  # type: ignore[no-any-return]
        settled, timeout=timeout, interval=0.5, what=f"{name} to reach {'/'.join(wanted)}"
    )


def conditions(st: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in st.get("conditions") or []}


def bump(kubectl: Kubectl, namespace: str, name: str, spec: dict[str, Any]) -> None:
    """Merge-patch the spec (a new generation)."""
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


def execute(url: str, statement: str) -> None:
    """Run one statement that returns no rows (a tenant's DDL set up or fixed by the test)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())


def _rows(url: str, query: sql.Composable) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def has_history(url: str, schema: str = "kubemigrate") -> bool:
    found = _rows(url, sql.SQL("SELECT to_regclass({})").format(sql.Literal(f"{schema}.history")))
    return found[0][0] is not None


def history_rows(url: str, schema: str = "kubemigrate") -> list[tuple[Any, ...]]:
    """Every history row (HISTORY_ROW columns) in id order; [] when there is no history."""
    if not has_history(url, schema):
        return []
    return _rows(
        url,
        sql.SQL("SELECT " + HISTORY_ROW + " FROM {}.history ORDER BY id").format(
            sql.Identifier(schema)
        ),
    )


def applied(url: str, schema: str = "kubemigrate") -> list[str]:
    """Versions whose history's last word is a successful apply, sorted."""
    last: dict[str, tuple[str, str]] = {}
    for _, _, version, kind, status, _, _ in history_rows(url, schema):
        last[version] = (kind, status)
    return sorted(v for v, ks in last.items() if ks == ("apply", "success"))


def applied_twice(url: str, schema: str = "kubemigrate") -> list[str]:
    """Versions with more than one successful apply and no rollback between them."""
    seen: dict[str, int] = {}
    twice = []
    for _, _, version, kind, status, _, _ in history_rows(url, schema):
        if status != "success":
            continue
        if kind == "rollback":
            seen[version] = 0
        elif kind == "apply":
            seen[version] = seen.get(version, 0) + 1
            if seen[version] == 2:
                twice.append(version)
    return twice


def user_tables(url: str, schema: str = "public") -> set[str]:
    found = _rows(
        url,
        sql.SQL("SELECT tablename FROM pg_tables WHERE schemaname = {}").format(
            sql.Literal(schema)
        ),
    )
    return {r[0] for r in found}


def untouched(tenant: Tenant) -> bool:
    """No history and no table of the migrations: the rollout never reached it."""
    return not has_history(tenant.url) and "base" not in user_tables(tenant.url)


def pod_logs(cluster: Cluster, namespace: str) -> list[str]:
    """Every pod's output in namespace: the node runner's log files on the local stack (which
    has no kubelet to serve `kubectl logs`), else `kubectl logs`."""
    if cluster.local and cluster.state_dir is not None:
        logs = cluster.state_dir / "node" / "logs"
        return [p.read_text(errors="replace") for p in sorted(logs.glob(f"{namespace}_*.log"))]
    kubectl = cluster.kubectl
    pods = kubectl.run("get", "pods", "-n", namespace, "-o", "name").stdout.split()
    return [
        kubectl.run("logs", pod, "-n", namespace, "--all-containers", check=False).stdout
        for pod in pods
    ]


def everything_said(cluster: Cluster, namespace: str, *extra: str) -> str:
    """Every place a value could leak to in the namespace: the sets, events, Jobs, pods,
    ConfigMaps (the ledgers) and the pods' output, plus extra text (the operator's log)."""
    kinds = ("migrationsets", "events", "jobs", "pods", "configmaps")
    said = [cluster.kubectl.run("get", k, "-n", namespace, "-o", "yaml").stdout for k in kinds]
    return "\n".join([*said, *pod_logs(cluster, namespace), *extra])


def outcome(tenant_list: Iterable[Tenant], full: list[str]) -> dict[str, list[str]]:
    """Tenants by what their database holds: migrated (every version of full applied),
    untouched, or partial (anything else)."""
    out: dict[str, list[str]] = {"migrated": [], "untouched": [], "partial": []}
    for t in tenant_list:
        if untouched(t):
            out["untouched"].append(t.name)
        elif applied(t.url) == full:
            out["migrated"].append(t.name)
        else:
            out["partial"].append(t.name)
    return out
