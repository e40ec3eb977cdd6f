"""Building Migration manifests and reading the database in the operator's tests."""

from __future__ import annotations

from typing import Any

import psycopg
import yaml

from harness.kube import Kubectl, wait_for


def migration(
    name: str,
    version: str,
    sql: str,
    *,
    rollback_sql: str | None = None,
    depends_on: tuple[str, ...] = (),
    secret: str = "db",
    **spec: Any,
) -> str:
    body: dict[str, Any] = {
        "database": {"secretRef": {"name": secret}},
        "version": version,
        "sql": sql,
        **spec,
    }
    if rollback_sql:
        body["rollbackSql"] = rollback_sql
    if depends_on:
        body["dependsOn"] = list(depends_on)
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "Migration",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def status(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return kubectl.json("get", "migration", name, "-n", namespace).get("status") or {}


def wait_phase(
    kubectl: Kubectl, namespace: str, name: str, *phases: str, timeout: float = 90
) -> dict[str, Any]:
    """Wait until the migration's status describes its current generation in one of phases."""

    def settled() -> dict[str, Any] | None:
        obj = kubectl.json("get", "migration", name, "-n", namespace)
        st = obj.get("status") or {}
        current = st.get("observedGeneration") == obj["metadata"]["generation"]
        return st if current and st.get("phase") in phases else None

    return wait_for(
        settled,
        timeout=timeout,
        interval=0.3,  # type: ignore[no-any-return]
        what=f"{name} to reach {'/'.join(phases)}",
    )


def query(url: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def tables(url: str) -> set[str]:
    return {r[0] for r in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def history(url: str) -> list[tuple[Any, ...]]:
    """(version, kind, status) of every history row, oldest first."""
    return query(url, "SELECT version, kind, status FROM kubemigrate.history ORDER BY id")


def set_rollback(kubectl: Kubectl, namespace: str, name: str, value: bool) -> None:
    """`kubectl patch` spec.rollback, as a user reverts (true) or re-applies (false)."""
    flag = "true" if value else "false"
    kubectl.run(
        "patch",
        "migration",
        name,
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        f'{{"spec":{{"rollback":{flag}}}}}',
    )
