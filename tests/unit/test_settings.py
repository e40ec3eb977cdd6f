"""The one settings object: read from KUBEMIGRATE_* variables, validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubemigrate.settings import Settings


def test_reads_prefixed_variables_and_ignores_other_tools_ones() -> None:
    s = Settings.from_env(
        {
            "KUBEMIGRATE_IMAGE": "registry.example/km:1",
            "KUBEMIGRATE_LOCK_WAIT_SECONDS": "5",
            "KUBEMIGRATE_CACHE": "/somewhere",
            "HOME": "/root",
        }
    )
    assert s.image == "registry.example/km:1"
    assert s.lock_wait_seconds == 5.0
    assert s.metrics_port == 8080


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="retry_min_seconds"):
        Settings.from_env({"KUBEMIGRATE_RETRY_MIN_SECONDS": "-1"})
