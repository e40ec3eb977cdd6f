"""Fixtures for the backup tests: a populated source database and fresh targets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import databases
from integration.backup.backup_helpers import populate


@pytest.fixture
def source_url(database_url: str) -> str:
    """A fresh database filled with backup_helpers' objects and rows."""
    populate(database_url)
    return database_url


@pytest.fixture
def new_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Make more fresh, empty databases; all dropped after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(databases.create(pg_admin_url))
        return made[-1]

    yield make
    for url in made:
        databases.drop(pg_admin_url, url)


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    """A directory for the test's backup files."""
    path = tmp_path / "backups"
    path.mkdir()
    return path
