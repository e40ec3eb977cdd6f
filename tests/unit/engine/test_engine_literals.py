"""SQL literals for history rows: quoting that holds whatever the text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from kubemigrate.engine.pg.literals import literal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "NULL"),
        (True, "true"),
        (3, "3"),
        (1.5, "1.5"),
        ("it's", "'it''s'"),
        ("a\\b'", "E'a\\\\b'''"),
        ([], "'{}'"),
        (["a", "b'c"], "ARRAY['a','b''c']"),
        ([1, 20], "ARRAY[1,20]"),
        (uuid.UUID(int=1), "'00000000-0000-0000-0000-000000000001'"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "'2024-01-02T03:04:05+00:00'"),
    ],
)
def test_literal(value: object, expected: str) -> None:
    assert literal(value) == expected  # type: ignore[arg-type]


def test_naive_timestamps_and_nul_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        literal(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="NUL"):
        literal("a\x00b")
