"""Fixtures for the CLI tests: a migrations directory and the command bound to a fresh database."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.cli.cli_helpers import Kubemigrate, Migrations


@pytest.fixture
def migrations(tmp_path: Path) -> Migrations:
    return Migrations(tmp_path / "migrations")


@pytest.fixture
def kubemigrate(database_url: str, migrations: Migrations) -> Kubemigrate:
    return Kubemigrate(database_url, migrations)
