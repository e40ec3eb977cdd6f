"""Fleets of tenants on the test PostgreSQL server, for the fleet tests and the fleet benchmark:
a database per tenant (each with a labelled Secret naming it) or a schema per tenant in one
database.

Databases are made with one CREATE DATABASE each on a few connections at once (an empty
template1 copies in milliseconds), so 200 tenants take seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from harness.databases import with_dbname

WORKERS = 4
"""Connections creating or dropping databases at once (more only contend for the catalog)."""
SECRET_LABEL = {"app": "orders"}
"""The label every tenant Secret carries, and the selector the fleet tests use."""


@dataclass(frozen=True)
class Tenant:
    """One tenant database: its Secret's name (the fleet's target name) and its URL."""

    name: str
    url: str

    @property
    def dbname(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]


def tenant_names(count: int, prefix: str = "tenant") -> list[str]:
    """tenant-000, tenant-001, ...: sorted by name as they are by index (the order of a rollout)."""
    width = max(3, len(str(count - 1)))
    return [f"{prefix}-{i:0{width}d}" for i in range(count)]


def schema_names(count: int, prefix: str = "tenant") -> list[str]:
    """tenant_000, tenant_001, ...: tenant names that need no quoting as schema names."""
    return [n.replace("-", "_") for n in tenant_names(count, prefix)]


def _create_db(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def _drop_db(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


def create_databases(admin_url: str, names: Sequence[str], tag: str) -> list[Tenant]:
    """A fresh, empty database per name (database `<tag>_<index>`), created WORKERS at a time."""
    tenants = [Tenant(n, with_dbname(admin_url, f"{tag}_{i}")) for i, n in enumerate(names)]
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda t: _create_db(admin_url, t.dbname), tenants))
    return tenants


def drop_databases(admin_url: str, tenants: Iterable[Tenant]) -> None:
    """Drop the tenants' databases (those still there), disconnecting whoever is in them."""
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda t: _drop_db(admin_url, t.dbname), list(tenants)))


def secret(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Secret manifest (stringData) with these labels (default: the tenants' label)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": dict(SECRET_LABEL if labels is None else labels)},
        "type": "Opaque",
        "stringData": data,
    }


def secrets(tenants: Iterable[Tenant], key: str = "url") -> list[dict[str, Any]]:
    """One labelled Secret per tenant, its URL under key."""
    return [secret(t.name, {key: t.url}) for t in tenants]


def schema_url(url: str, schema: str) -> str:
    """url with search_path set to schema (libpq's options parameter), as a schema target runs."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}', safe='')}"


def create_schemas(url: str, names: Sequence[str]) -> None:
    """Empty schemas of these names in the database at url, in one transaction."""
    with psycopg.connect(url) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))


def drop_schemas(url: str, names: Sequence[str]) -> None:
    with psycopg.connect(url) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
