"""Fixtures for the engine's tests: an engine factory bound to a fresh database.

Every test runs against a real PostgreSQL (the ``database_url`` fixture): nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kubemigrate.engine.migrate.migrator import Migrator

EngineFactory = Callable[..., Migrator]


@pytest.fixture
def make_engine(database_url: str) -> EngineFactory:
    """Migrator(database_url, ...) with fast retries, so tests stay quick."""

    def make(**kw: Any) -> Migrator:
        options: dict[str, Any] = {
            "lock_retry_delay": 0.02,
            "lock_retry_max_delay": 0.1,
            "lock_wait_seconds": 10.0,
            "actor": "tests",
        }
        options.update(kw)
        return Migrator(database_url, **options)

    return make


@pytest.fixture
def engine(make_engine: EngineFactory) -> Migrator:
    return make_engine()
