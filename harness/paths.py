"""Where the harness keeps things: the repo, the Go module that builds the control plane, the
build cache outside the repo, and state directories."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD_TOOLS = Path(__file__).resolve().parent / "cluster" / "build.sh"
DEV_DIR = REPO / ".dev"
CACHE = Path(os.environ.get("KUBEMIGRATE_CACHE", Path.home() / ".cache" / "kubemigrate"))
PG_BIN = Path(os.environ.get("KUBEMIGRATE_PG_BIN", "/usr/lib/postgresql/15/bin"))
