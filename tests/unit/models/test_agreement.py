"""Where the models and the engine must agree without importing each other."""

from __future__ import annotations

import re

import pytest

from kubemigrate.engine.migrate import versions
from kubemigrate.engine.migrate.durations import parse_duration
from kubemigrate.models import base, migration


def test_version_pattern_is_the_engines() -> None:
    assert migration.VERSION_PATTERN == versions.VERSION_PATTERN
    assert migration.MAX_VERSION_LENGTH == versions.MAX_VERSION_LENGTH


@pytest.mark.parametrize("text", ["500ms", "5s", "30m", "1h30m", "1.5s", "0s", "2h0m0s"])
def test_every_duration_the_crd_accepts_the_engine_reads(text: str) -> None:
    assert re.fullmatch(base.DURATION_PATTERN, text)
    assert parse_duration(text) >= 0
