"""A connection error never carries the connection string: not a password, and not a value that
is no connection string at all (a token in a Secret key a Migration was pointed at).

The messages are built from the parts known to be safe to show (host, port, database, user); a
value that does not parse is only said not to be a PostgreSQL URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import conninfo

from kubemigrate.cli import main
from kubemigrate.engine import AuthenticationFailed, ConnectionFailed, InvalidUrl, Migrator
from kubemigrate.engine.pg.libpq import tool_connection
from kubemigrate.engine.pg.session import Session
from kubemigrate.engine.pg.target import Target, connection_failed, secrets_of

CANARY = "TOPSECRET-c4n4ry"

NOT_URLS = [
    CANARY,  # a bare token or password
    f"{CANARY}==",  # base64 padding: looks like key=value
    f"{CANARY}='x y' \"z\"",  # '=' and quotes
    f"ab\"c='d={CANARY}",
    f"line one\n{CANARY}\nline three",  # newlines
    f"Bearer {CANARY}",
    f"https://api:{CANARY}@example.com/v1",  # a URL, but not PostgreSQL's
]

HOSTILE_URLS = [
    # a bad port: libpq quotes the value it could not read
    (f"postgresql://app:pw@127.0.0.1:{CANARY}/app", "postgresql://app@127.0.0.1/app"),
    # the password in the query string
    (f"postgresql://127.0.0.1:1/app?password={CANARY}", "postgresql://127.0.0.1:1/app"),
    (f"postgresql://app:{quote(CANARY)}@127.0.0.1:1/app", "postgresql://app@127.0.0.1:1/app"),
    # a newline smuggled into the database name
    (f"postgresql://app:pw@127.0.0.1:1/app%0A{CANARY}", "postgresql://app@127.0.0.1:1"),
    # key=value: quoted password, and a setting libpq quotes when it refuses it
    (f"host=127.0.0.1 port=1 user=app password='{CANARY} x'", "postgresql://app@127.0.0.1:1"),
    (f"host=127.0.0.1 port=1 sslmode={CANARY}", "postgresql://127.0.0.1:1"),
    (f"host=127.0.0.1 port=1 options='-c search_path={CANARY}'", "postgresql://127.0.0.1:1"),
]


def driver_error(value: str) -> psycopg.Error:
    """What psycopg raises for value, without a server: the parse error, or (for a string that
    parses) a connection error of the kind libpq writes, quoting what it could not use."""
    try:
        parts = conninfo.conninfo_to_dict(value)
    except psycopg.Error as exc:
        return exc
    quoted = " ".join(f'invalid value "{v}" for "{k}"' for k, v in parts.items())
    return psycopg.OperationalError(f"connection failed: {quoted}\n{value}")


def leaks(text: str) -> bool:
    return CANARY in text or quote(CANARY) in text


@pytest.mark.parametrize("value", NOT_URLS)
def test_a_value_that_is_no_connection_string_is_never_quoted(value: str) -> None:
    error = connection_failed(value, driver_error(value))
    assert isinstance(error, InvalidUrl) and isinstance(error, ConnectionFailed)
    assert not leaks(str(error)) and not leaks(repr(error))
    assert "not a PostgreSQL URL" in str(error)
    assert "\n" not in str(error)
    assert Target.of(value) is None


@pytest.mark.parametrize(("value", "shown"), HOSTILE_URLS)
def test_a_connection_string_is_shown_by_its_safe_parts_only(value: str, shown: str) -> None:
    error = connection_failed(value, driver_error(value))
    message = str(error)
    assert not leaks(message), message
    assert message.startswith(f"cannot connect to {shown}: ")
    assert "\n" not in message
    assert not isinstance(error, InvalidUrl)


@pytest.mark.parametrize("value", [v for v, _ in HOSTILE_URLS] + NOT_URLS)
def test_session_connect_says_nothing_of_the_value(value: str) -> None:
    """The real driver, against a closed port (no server needed): nothing of the value."""
    with pytest.raises(ConnectionFailed) as failed:
        Session.connect(value, application_name="test", connect_timeout=2)
    assert not leaks(str(failed.value)), str(failed.value)
    assert failed.value.__cause__ is None  # no driver exception, quoting it, chained on


@pytest.mark.parametrize("value", [v for v, _ in HOSTILE_URLS] + NOT_URLS)
def test_every_secret_form_of_a_value_is_known(value: str) -> None:
    """secrets_of lists what output must mask: the whole value, and each part not shown."""
    secrets = secrets_of(value)
    assert value in secrets
    target = Target.of(value)
    if target is not None:
        for part in (target.host, target.port, target.dbname, target.user):
            assert part is None or not leaks(part)


def test_safe_parts_are_shown_and_a_password_never() -> None:
    target = Target.of("postgresql://app:s3cret@db.example.com:5433/orders?sslmode=require")
    assert target is not None
    assert str(target) == "postgresql://app@db.example.com:5433/orders"
    assert "s3cret" in secrets_of("postgresql://app:s3cret@db/orders")
    assert str(Target.of("host=/var/run/postgresql dbname=x")) == (
        "postgresql://%2Fvar%2Frun%2Fpostgresql/x"
    )
    assert str(Target.of("postgresql://u@[::1]:5/db")) == "postgresql://u@[::1]:5/db"


def test_a_refused_login_is_an_authentication_failure() -> None:
    """SQLSTATE 28P01/28000: the Secret needs a fix; time does not cure it."""
    exc = psycopg.OperationalError(
        'connection failed: FATAL:  password authentication failed for user "app"'
    )
    exc.sqlstate = "28P01"  # type: ignore[misc]
    error = connection_failed("postgresql://app:pw@db/app", exc)
    assert isinstance(error, AuthenticationFailed)
    assert 'password authentication failed for user "app"' in str(error)


def test_migrator_repr_shows_no_value() -> None:
    assert not leaks(repr(Migrator(CANARY)))
    assert not leaks(repr(Migrator(f"postgresql://app:{CANARY}@db/app")))


@pytest.mark.parametrize("value", NOT_URLS[:3])
def test_tool_connections_never_quote_the_value(value: str) -> None:
    with pytest.raises(InvalidUrl) as bad:
        tool_connection(value)
    assert not leaks(str(bad.value))


@pytest.mark.parametrize("value", [NOT_URLS[0], NOT_URLS[4], HOSTILE_URLS[0][0]])
def test_the_cli_prints_nothing_of_the_value(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["status", str(tmp_path), "--database-url", value])
    out, err = capsys.readouterr()
    assert status == 3
    assert not leaks(out + err), err
    status = main(["backup", "--database-url", value, "--output", str(tmp_path / "x"), "--json"])
    out, err = capsys.readouterr()
    assert status != 0
    assert not leaks(out + err), out + err
