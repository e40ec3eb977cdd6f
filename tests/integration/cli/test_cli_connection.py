"""Connection problems: one line, exit 3, and never a password, whatever goes wrong."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlsplit

import pytest

from harness import postgres
from harness.ports import free_port
from integration.cli.cli_helpers import Migrations, run_cli

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55/w@rd"
ROLE = postgres.PASSWORD_ROLE


def assert_clean(output: str) -> None:
    for form in (PASSWORD, quote(PASSWORD, safe=""), "s3cret"):
        assert form not in output


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def some_migrations(migrations: Migrations) -> Migrations:
    migrations.write("001_a.up.sql", "CREATE TABLE a (id int);")
    return migrations


@pytest.mark.parametrize("command", ["apply", "status", "validate"])
def test_unreachable_database(some_migrations: Migrations, command: str) -> None:
    url = f"postgresql://app:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/app"
    result = run_cli(command, str(some_migrations), "--database-url", url)
    assert result.returncode == 3, result
    error = one_error_line(result.stderr)
    assert "127.0.0.1" in error
    assert_clean(result.output)


def test_database_url_from_the_environment(some_migrations: Migrations) -> None:
    url = f"postgresql://app:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/app"
    result = run_cli("apply", str(some_migrations), env={"DATABASE_URL": url})
    assert result.returncode == 3, result
    assert_clean(result.output)


def test_no_database_given(some_migrations: Migrations) -> None:
    result = run_cli("apply", str(some_migrations))
    assert result.returncode == 2, result
    assert "DATABASE_URL" in one_error_line(result.stderr)


@pytest.fixture
def password_server(password_role: Callable[[str], str], database_url: str) -> str:
    """A database on the shared server, where ROLE must log in with PASSWORD."""
    password_role(PASSWORD)
    return database_url


def _as_role(url: str, password: str) -> str:
    parts = urlsplit(url)
    return parts._replace(
        netloc=f"{ROLE}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    ).geturl()


def test_wrong_password(password_server: str, some_migrations: Migrations) -> None:
    wrong = PASSWORD.replace("s3cret", "wrong")
    result = run_cli(
        "apply",
        str(some_migrations),
        "--database-url",
        _as_role(password_server, wrong),
        "--verbose",
    )
    assert result.returncode == 3, result
    error = one_error_line(result.stderr)
    assert "password authentication failed" in error
    assert wrong not in result.output and quote(wrong, safe="") not in result.output


def test_right_password_is_never_printed(password_server: str, some_migrations: Migrations) -> None:
    url = _as_role(password_server, PASSWORD)
    for args in (["apply", "--verbose"], ["status"], ["status", "--json"], ["apply"]):
        result = run_cli(args[0], str(some_migrations), "--database-url", url, *args[1:])
        assert result.returncode == 0, result
        assert_clean(result.output)
    some_migrations.write("002_bad.up.sql", f"SELECT '{PASSWORD}'::int;")
    failed = run_cli("apply", str(some_migrations), "--database-url", url, "--verbose")
    assert failed.returncode == 1, failed
    assert_clean(failed.output)
