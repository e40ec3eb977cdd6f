"""Kubernetes' `$(VAR)` expansion, as the node runner applies it to env values, command and args."""

from __future__ import annotations

import pytest

from harness.node.env import expand

VARS = {"A": "1", "B": "two"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-$(B)", "1-two"),
        ("$$(A)", "$(A)"),  # escaped
        ("$(MISSING)", "$(MISSING)"),  # unknown stays
        ("$(A", "$(A"),  # unclosed stays
        ("cost $5 $", "cost $5 $"),  # a lone $ is literal
        ("$$$(A)", "$1"),
        ("", ""),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, VARS) == expected
