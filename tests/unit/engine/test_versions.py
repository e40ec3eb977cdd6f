"""Versions: which spellings are accepted, and how they order."""

from __future__ import annotations

import re

import pytest

from kubemigrate.engine.migrate.versions import VERSION_PATTERN, validate_version, version_key


@pytest.mark.parametrize(
    "v", ["0", "001", "1", "2024.12.20.1", "1_1", "20241220103000000000", "1.2_3", "9" * 64]
)
def test_valid_versions_are_returned_unchanged(v: str) -> None:
    assert validate_version(v) == v
    assert re.fullmatch(VERSION_PATTERN, v)


@pytest.mark.parametrize(
    "v", ["", "v1", "1.", ".1", "1..2", "1__2", "1-2", " 1", "1 ", "1.a", "١٢", "9" * 65, "1\n"]
)
def test_invalid_versions_are_refused_with_the_reason(v: str) -> None:
    with pytest.raises(ValueError, match="version"):
        validate_version(v)


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        ("2", "10"),
        ("1", "1.1"),
        ("1.9", "1.10"),
        ("2024.12.20.1", "2024.12.20.2"),
        ("2024.12.20.9", "2024.12.21"),
        ("0", "1"),
        ("999", "20241220103000000000"),
        ("20241220103000000000", "20241220103000000001"),
    ],
)
def test_segments_compare_as_numbers(smaller: str, larger: str) -> None:
    assert version_key(smaller) < version_key(larger)


@pytest.mark.parametrize(
    ("a", "b"),
    [("001", "1"), ("1.0", "1"), ("1.0.0", "1"), ("1_1", "1.1"), ("0", "0.0"), ("01.02", "1.2")],
)
def test_equal_keys_mean_the_same_version(a: str, b: str) -> None:
    assert version_key(a) == version_key(b)


def test_zero_keeps_one_segment() -> None:
    assert version_key("0") == (0,)
    assert version_key("10.0") == (10,)


def test_key_refuses_invalid_versions() -> None:
    with pytest.raises(ValueError, match="invalid version"):
        version_key("abc")
