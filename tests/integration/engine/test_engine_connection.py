"""Connection failures: one clear line, never a password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from harness import databases, postgres
from harness.ports import free_port
from integration.engine.engine_helpers import src
from kubemigrate.engine.errors import AuthenticationFailed, ConnectionFailed, InvalidUrl
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
    # Named by its safe parts only: user, host, port and database, no password (not even ****).
    assert message.startswith("cannot connect to postgresql://postgres@127.0.0.1:")
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


def test_a_refused_login_is_an_authentication_failure(database_url: str, pg_admin_url: str) -> None:
    """The engine tells a wrong password from an outage: the operator retries an outage for as
    long as it lasts, and a refused login only a bounded number of times."""
    databases.ensure_role(pg_admin_url, postgres.PASSWORD_ROLE, "the-right-one")
    url = databases.with_user(database_url, postgres.PASSWORD_ROLE, SECRET)
    with pytest.raises(AuthenticationFailed) as caught:
        Migrator(url).status([])
    message = str(caught.value)
    _assert_clean(message)
    assert f'password authentication failed for user "{postgres.PASSWORD_ROLE}"' in message


@pytest.mark.parametrize("value", ["TOPSECRET-x", "TOPSECRET-x==", "a b\nTOPSECRET-x"])
def test_a_value_that_is_no_url_is_never_quoted(value: str) -> None:
    with pytest.raises(InvalidUrl) as caught:
        Migrator(value).apply([src("1", "SELECT 1")])
    assert "TOPSECRET" not in str(caught.value)
    assert "not a PostgreSQL URL" in str(caught.value)
