"""DatabaseBackup and DatabaseRestore manifests, and reading databases and backup files, for the
operator's backup tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import yaml

from harness.kube import Cluster, Kubectl, wait_for
from harness.node import dirs as node_dirs
from integration.operator.manifests import query

CLAIM = "backups"


def claim(name: str = CLAIM) -> str:
    """A PersistentVolumeClaim: the node runner gives it a host directory (it stays Pending)."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )


def backup(name: str, *, secret: str = "db", claim_name: str = CLAIM, **spec: Any) -> str:
    body = {
        "database": {"secretRef": {"name": secret}},
        "storage": {"persistentVolumeClaim": {"claimName": claim_name}},
        **spec,
    }
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "DatabaseBackup",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def restore(name: str, backup_name: str, **spec: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "DatabaseRestore",
            "metadata": {"name": name},
            "spec": {"backupRef": {"name": backup_name}, **spec},
        }
    )


def wait_done(
    kubectl: Kubectl, namespace: str, kind: str, name: str, timeout: float = 60
) -> dict[str, Any]:
    """The status of a DatabaseBackup or DatabaseRestore once it is Succeeded or Failed."""

    def done() -> dict[str, Any] | None:
        got = kubectl.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        st = (json.loads(got.stdout).get("status") or {}) if got.returncode == 0 else {}
        return st if st.get("phase") in ("Succeeded", "Failed") else None

    return wait_for(
        done,
        timeout=timeout,
        interval=0.3,  # type: ignore[no-any-return]
        what=f"{kind} {name} to finish",
    )


def pvc_dir(cluster: Cluster, namespace: str, claim_name: str = CLAIM) -> Path:
    assert cluster.state_dir is not None
    return node_dirs.pvc_dir(cluster.state_dir / "node", namespace, claim_name)


def files(cluster: Cluster, namespace: str, claim_name: str = CLAIM) -> set[str]:
    """Every file under the claim's directory, relative to it."""
    root = pvc_dir(cluster, namespace, claim_name)
    return (
        {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else set()
    )


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Per user table: (row count, md5 of its rows in order): equal means equal content."""
    names = [
        r[0]
        for r in query(
            url,
            "SELECT format('%I.%I', schemaname, tablename) FROM "
            "pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
    ]
    out = {}
    for table in names:
        count, digest = query(
            url,
            f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' "
            f"ORDER BY t::text), '')) FROM {table} t",
        )[0]
        out[table] = (int(count), str(digest))
    return out


SEED = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers,
                     total numeric(10, 2), placed timestamptz DEFAULT '2024-12-20');
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com'
  FROM generate_series(1, 200) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 200, g * 1.25
  FROM generate_series(1, 1500) g;
"""


def seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED)  # type: ignore[arg-type]
