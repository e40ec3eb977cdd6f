"""``python -m kubemigrate``: the same as the ``kubemigrate`` command."""

from __future__ import annotations

from kubemigrate.cli import main

raise SystemExit(main())
