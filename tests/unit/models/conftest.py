"""Example manifests, as users write them (camelCase YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFESTS = Path(__file__).with_name("manifests")


@pytest.fixture
def manifest() -> Any:
    """Load manifests/<name>.yaml as a dict."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load((MANIFESTS / f"{name}.yaml").read_text())
        return data

    return load
