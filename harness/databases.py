"""Per-test PostgreSQL databases on a shared server, created and dropped by name."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql


def with_user(url: str, user: str, password: str) -> str:
    """The same libpq URL with other credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def ensure_role(admin_url: str, role: str, password: str, *, superuser: bool = False) -> None:
    """A login role with this password (created or reset)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        verb = "ALTER" if exists else "CREATE"
        power = "SUPERUSER" if superuser else "NOSUPERUSER"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN " + power + " PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )


def with_dbname(url: str, dbname: str) -> str:
    """The same libpq URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def create(admin_url: str, prefix: str = "t") -> str:
    """Create a fresh, empty database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_dbname(admin_url, name)


def drop(admin_url: str, url: str) -> None:
    """Drop the database url names, disconnecting whoever is still in it."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def reachable(url: str) -> bool:
    """Whether a connection to url succeeds within two seconds."""
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
