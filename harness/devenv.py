"""Reading and writing `.dev/env`, the sourceable file `make dev-up` leaves behind."""

from __future__ import annotations

import shlex
from pathlib import Path

from harness.paths import DEV_DIR


def write_env(values: dict[str, str], directory: Path = DEV_DIR) -> Path:
    """Write `export K=V` lines that a shell can source."""
    path = directory / "env"
    path.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items()))
    return path


def read_env(directory: Path = DEV_DIR) -> dict[str, str]:
    """The values in `.dev/env`, or {} when there is none. Liveness is the caller's question."""
    path = directory / "env"
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, raw = line[len("export ") :].partition("=")
            values[key] = shlex.split(raw)[0] if raw else ""
    return values
