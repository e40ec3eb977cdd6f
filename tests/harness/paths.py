"""Where the harness keeps things: the repo, the build cache outside it, and state directories."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEV_DIR = REPO / ".dev"
CACHE = Path(os.environ.get("KUBEMIGRATE_CACHE", Path.home() / ".cache" / "kubemigrate"))
PG_BIN = Path(os.environ.get("KUBEMIGRATE_PG_BIN", "/usr/lib/postgresql/15/bin"))
