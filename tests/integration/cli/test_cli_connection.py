"""Connection problems: one line, exit 3, and never a password, whatever goes wrong."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from psycopg import sql

from harness import databases, postgres
from harness.ports import free_port

from .cli_helpers import Migrations, run_cli

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55/w@rd"
ROLE = "kubemigrate_pw"


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


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    """A server of this module's own whose pg_hba asks ROLE for a SCRAM password over TCP.

    The shared test server trusts every loopback login, so a wrong password would get in there.
    """
    tmp = Path(tempfile.mkdtemp(prefix="kubemigrate-pw-"))
    datadir = tmp / "pgdata"
    server = postgres.start(datadir)
    try:
        hba = datadir / "pg_hba.conf"
        hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)))
            conn.execute("SELECT pg_reload_conf()")
        url = databases.create(server.url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(urlsplit(url).path.lstrip("/")), sql.Identifier(ROLE)))
        yield url
    finally:
        postgres.stop(datadir)
        shutil.rmtree(tmp, ignore_errors=True)


def _as_role(url: str, password: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{ROLE}:{quote(password, safe='')}@{parts.hostname}:"
                                 f"{parts.port}").geturl()


def test_wrong_password(password_server: str, some_migrations: Migrations) -> None:
    wrong = PASSWORD.replace("s3cret", "wrong")
    result = run_cli("apply", str(some_migrations), "--database-url",
                     _as_role(password_server, wrong), "--verbose")
    assert result.returncode == 3, result
    error = one_error_line(result.stderr)
    assert "password authentication failed" in error
    assert wrong not in result.output and quote(wrong, safe="") not in result.output


def test_right_password_is_never_printed(password_server: str,
                                         some_migrations: Migrations) -> None:
    url = _as_role(password_server, PASSWORD)
    for args in (["apply", "--verbose"], ["status"], ["status", "--json"], ["apply"]):
        result = run_cli(args[0], str(some_migrations), "--database-url", url, *args[1:])
        assert result.returncode == 0, result
        assert_clean(result.output)
    some_migrations.write("002_bad.up.sql", f"SELECT '{PASSWORD}'::int;")
    failed = run_cli("apply", str(some_migrations), "--database-url", url, "--verbose")
    assert failed.returncode == 1, failed
    assert_clean(failed.output)
