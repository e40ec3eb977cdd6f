"""Label values from names: valid whatever the name's length and where a cut lands."""

from __future__ import annotations

import re

import pytest

from kubemigrate.controller.build.labels import label_value

VALID = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


@pytest.mark.parametrize(
    "name", ["m1", "a" * 63, "a" * 62 + "-b", "a" * 62 + "-" + "b" * 100, "x" * 60 + "-.-z" * 9]
)
def test_a_label_value_is_valid_and_a_prefix_of_the_name(name: str) -> None:
    value = label_value(name)
    assert len(value) <= 63 and VALID.fullmatch(value), value
    assert name.startswith(value)
