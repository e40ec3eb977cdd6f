"""Connection failures: one clear line, never a password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from harness.ports import free_port
from integration.engine.engine_helpers import src
from kubemigrate.engine.errors import ConnectionFailed
from kubemigrate.engine.migrate.migrator import Migrator

SECRET = "s3cr3t-p@ss/word"
ENCODED = "s3cr3t-p%40ss%2Fword"


def _with_password(url: str, *, port: int | None = None, dbname: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{parts.username or 'postgres'}:{ENCODED}@{host}:{port or parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, path="/" + (dbname or parts.path[1:])))


def _assert_clean(message: str) -> None:
    assert "\n" not in message
    assert SECRET not in message and ENCODED not in message and "s3cr3t" not in message


def test_unreachable_server(database_url: str) -> None:
    url = _with_password(database_url, port=free_port())
    with pytest.raises(ConnectionFailed) as caught:
        Migrator(url, connect_timeout=2).apply([src("1", "SELECT 1")])
    message = str(caught.value)
    _assert_clean(message)
    assert message.startswith("cannot connect to postgresql://postgres:****@")
    assert "refused" in message.lower()


def test_unknown_database(database_url: str) -> None:
    url = _with_password(database_url, dbname="no_such_database")
    with pytest.raises(ConnectionFailed) as caught:
        Migrator(url).status([])
    message = str(caught.value)
    _assert_clean(message)
    assert 'database "no_such_database" does not exist' in message


def test_password_in_query_string(database_url: str) -> None:
    parts = urlsplit(_with_password(database_url, port=free_port()))
    url = urlunsplit(
        parts._replace(
            netloc=f"postgres@{parts.hostname}:{parts.port}",
            query=f"password={ENCODED}&sslmode=disable",
        )
    )
    with pytest.raises(ConnectionFailed) as caught:
        Migrator(url, connect_timeout=2).validate([])
    _assert_clean(str(caught.value))


def test_repr_masks_the_password(database_url: str) -> None:
    _assert_clean(repr(Migrator(_with_password(database_url))))
