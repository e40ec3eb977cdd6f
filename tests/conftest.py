"""Fixtures shared by every tier: PostgreSQL, from .dev/env or started for the run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import databases, postgres, s3
from harness.devenv import read_env
from harness.paths import DEV_DIR
from harness.s3 import S3Server


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig", default=None, help="run integration tests against this cluster"
    )
    parser.addoption(
        "--database-url",
        default=None,
        help="superuser libpq URL of a PostgreSQL server for the tests",
    )


@pytest.fixture(scope="session")
def pg_admin_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A superuser URL of a running PostgreSQL server: given, from .dev/env, or started now."""
    given = request.config.getoption("--database-url") or os.environ.get(
        "KUBEMIGRATE_TEST_DATABASE_URL"
    )
    if given:
        yield given
        return
    dev_url = read_env().get("DATABASE_URL")
    if dev_url and databases.reachable(dev_url):
        postgres.start(DEV_DIR / "postgres")  # reuses it; brings an older pg_hba.conf up to date
        yield dev_url
        return
    with tempfile.TemporaryDirectory(prefix="kubemigrate-pg-") as tmp:
        datadir = Path(tmp) / "pgdata"
        server = postgres.start(datadir)
        try:
            yield server.url
        finally:
            postgres.stop(datadir)


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    url = databases.create(pg_admin_url)
    try:
        yield url
    finally:
        databases.drop(pg_admin_url, url)


@pytest.fixture
def password_role(pg_admin_url: str) -> Callable[[str], str]:
    """Give the harness' password-only role (a superuser) a password; returns the role's name.

    Every other login on the test server is trusted, so a wrong password needs this role."""

    def set_password(password: str) -> str:
        databases.ensure_role(pg_admin_url, postgres.PASSWORD_ROLE, password, superuser=True)
        return postgres.PASSWORD_ROLE

    return set_password


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (moto in server mode) on loopback, with authentication on:
    only the credentials in ``s3_server.env()`` are accepted."""
    with s3.running(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the test S3 server."""
    return s3_server.new_bucket()
