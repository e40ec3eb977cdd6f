"""Durations written the way Kubernetes users write them: ``500ms``, ``5s``, ``30m``, ``1h30m``.

Used for timeouts in migration file headers and in resource specs. A bare number is seconds.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_BARE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_duration(text: str) -> float:
    """Seconds in text (``"5s"`` -> 5.0, ``"1h30m"`` -> 5400.0); ValueError if unreadable."""
    s = text.strip()
    if _BARE.fullmatch(s):
        return float(s)
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise ValueError(
                f"invalid duration {text!r}: expected e.g. '500ms', '5s', '30m' or '1h30m'"
            )
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    if not s:
        raise ValueError("duration is empty")
    return total
