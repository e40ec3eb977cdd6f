"""Migration versions: validated once, then ordered as numbers rather than as text.

A version is one or more runs of digits separated by ``.`` or ``_``: ``"001"``,
``"2024.12.20.1"``, ``"1_1"`` (Flyway's spelling of ``1.1``) or a 20-digit timestamp.
Segments compare as integers, so ``"2"`` sorts before ``"10"`` and leading zeros do not count:
``"001"`` and ``"1"`` are the same version, and a directory holding both has a duplicate.

Trailing zero segments do not count either, as in Flyway: ``"1.0"``, ``"1.0.0"`` and ``"1"`` are
the same version. Otherwise ``"1.0"`` would sort after ``"1"`` while reading as the same number
to a person, and two files meant as one version would both run.
"""

from __future__ import annotations

import re

VERSION_PATTERN = r"^[0-9]+([._][0-9]+)*$"
"""The accepted spelling, usable as a CRD's OpenAPI ``pattern`` (no lookarounds, ECMA-262 safe)."""

MAX_VERSION_LENGTH = 64
"""Long enough for a timestamp with separators; short enough to stay readable in a table."""

_VERSION_RE = re.compile(VERSION_PATTERN)
_SEPARATORS = re.compile(r"[._]")


def validate_version(v: str) -> str:
    """Return v unchanged if it is a well-formed version; raise ValueError saying why not."""
    if not isinstance(v, str):
        raise ValueError(f"version must be a string, got {type(v).__name__}")
    if not v:
        raise ValueError("version is empty")
    if len(v) > MAX_VERSION_LENGTH:
        raise ValueError(f"version {v[:20]!r}... is longer than {MAX_VERSION_LENGTH} characters")
    if not _VERSION_RE.fullmatch(v):
        raise ValueError(
            f"invalid version {v!r}: expected digits separated by '.' or '_', "
            "e.g. '001', '2024.12.20.1' or '20241220103000'"
        )
    return v


def version_key(v: str) -> tuple[int, ...]:
    """The sort and identity key of a version: its segments as integers, trailing zeros dropped.

    Two versions with the same key are the same version (``"001"`` and ``"1"``, ``"1.0"`` and
    ``"1"``). ``"0"`` keeps one segment, ``(0,)``, so it still sorts before every other version.
    """
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= MAX_VERSION_LENGTH:
        return (int(v),)  # the common spelling, one run of digits: no pattern to match
    validate_version(v)
    parts = [int(p) for p in _SEPARATORS.split(v)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)
