"""Durations as Kubernetes users write them."""

from __future__ import annotations

import pytest

from kubemigrate.engine.migrate.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 5.0),
        ("2.5", 2.5),
        ("500ms", 0.5),
        ("5s", 5.0),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        (" 2s ", 2.0),
        ("0s", 0.0),
    ],
)
def test_parses(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "-5s", "5 s", "1d", "five"])
def test_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
