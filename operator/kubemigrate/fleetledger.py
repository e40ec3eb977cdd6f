"""The ledger of a fleet wave: which targets are claimed, done, failed, and whether to go on.

A wave's worker pods share one mutable ConfigMap (``<set>-w-<R>-<w>-ledger``) and update it with
optimistic concurrency; the operator reads it for status. Both sides load this module, so it is
plain data like ``jobresult``: no pydantic, no Kubernetes client, no engine. Every value in the
ConfigMap is a string; ``read_ledger`` forgives junk (an edited or truncated ConfigMap gives
defaults, never an exception), and no function here does I/O.

Claiming a target and checking the halt are one change of the ledger: once more targets have
failed than the wave's budget, no worker starts another one; targets already running finish.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

TARGETS_KEY = "targets"
"""The data key of a wave's targets ConfigMap: the target names, one a line, in claim order."""
MAX_ERRORS = 20
"""Failed targets the ledger names (the first ones); the rest are only counted."""
MAX_MESSAGE = 512
"""Characters of a failed target's message kept."""
MAX_INDEX = 1_000_000
"""Indexes at or above this are junk: a wave never has that many targets, and a range like
``0-999999999`` must not fill memory."""


@dataclass(frozen=True)
class TargetError:
    """Why one target failed: its name, the version it stopped at, the SQLSTATE if any, and a
    message that quotes no Secret value."""

    name: str
    version: str | None
    sqlstate: str | None
    message: str


@dataclass(frozen=True)
class Ledger:
    """One wave's progress, as the ConfigMap holds it (see the design's "The ledger")."""

    next: int = 0
    budget: int = 0
    paused: bool = False
    running: frozenset[int] = frozenset()
    succeeded: frozenset[int] = frozenset()
    failed: frozenset[int] = frozenset()
    errors: tuple[TargetError, ...] = ()
    versions: Mapping[str, int] = field(default_factory=dict)
    rows: int = 0


# -- index ranges ------------------------------------------------------------------------------


def parse_ranges(text: str) -> frozenset[int]:
    """``"0-3,7,9-10"`` as the indexes it names; parts that are not an index or a range in
    order (``x``, ``5-3``, ``-1``) are skipped."""
    found: set[int] = set()
    for part in (text or "").split(","):
        low, dash, high = part.strip().partition("-")
        first, last = _index(low), _index(high) if dash else _index(low)
        if first is not None and last is not None and first <= last:
            found.update(range(first, last + 1))
    return frozenset(found)


def _index(text: str) -> int | None:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value < MAX_INDEX else None


def format_ranges(indexes: Iterable[int]) -> str:
    """The indexes as ``"0-3,7,9-10"``, in order; ``""`` for none."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(set(indexes)):
        if run and i != run[-1] + 1:
            parts.append(_run(run))
            run = []
        run.append(i)
    if run:
        parts.append(_run(run))
    return ",".join(parts)


def _run(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


# -- the ConfigMap's data ----------------------------------------------------------------------


def new_ledger(budget: int, paused: bool = False) -> dict[str, str]:
    """The data of a wave's ledger before any worker ran."""
    return ledger_data(Ledger(budget=max(0, budget), paused=paused))


def read_ledger(data: Mapping[str, str] | None) -> Ledger:
    """The ledger in a ConfigMap's data; a missing or junk value reads as its default."""
    data = data or {}
    return Ledger(
        next=_count(data.get("next")),
        budget=_count(data.get("budget")),
        paused=str(data.get("paused", "")).strip().lower() == "true",
        running=parse_ranges(str(data.get("running") or "")),
        succeeded=parse_ranges(str(data.get("succeeded") or "")),
        failed=parse_ranges(str(data.get("failed") or "")),
        errors=_errors(data.get("errors")),
        versions=MappingProxyType(_versions(data.get("versions"))),
        rows=_count(data.get("rows")),
    )


def ledger_data(ledger: Ledger) -> dict[str, str]:
    """The ledger as a ConfigMap's data (all strings)."""
    errors = [
        {"name": e.name, "version": e.version, "sqlstate": e.sqlstate, "message": e.message}
        for e in ledger.errors
    ]
    return {
        "next": str(ledger.next),
        "budget": str(ledger.budget),
        "paused": "true" if ledger.paused else "false",
        "running": format_ranges(ledger.running),
        "succeeded": format_ranges(ledger.succeeded),
        "failed": format_ranges(ledger.failed),
        "errors": json.dumps(errors, separators=(",", ":"), ensure_ascii=False),
        "versions": json.dumps(dict(sorted(ledger.versions.items())), separators=(",", ":")),
        "rows": str(ledger.rows),
    }


def _count(value: object) -> int:
    try:
        return max(0, int(str(value).strip()))
    except ValueError:
        return 0


def _load(value: object) -> Any:
    try:
        return json.loads(str(value or ""))
    except ValueError:
        return None


def _errors(value: object) -> tuple[TargetError, ...]:
    items = _load(value)
    if not isinstance(items, list):
        return ()
    found = (_error(item) for item in items if isinstance(item, dict))
    return tuple(e for e in found if e is not None)[:MAX_ERRORS]


def _error(item: dict[str, Any]) -> TargetError | None:
    name, message = item.get("name"), item.get("message")
    if not isinstance(name, str) or not isinstance(message, str):
        return None
    version, sqlstate = item.get("version"), item.get("sqlstate")
    return TargetError(
        name=name,
        version=version if isinstance(version, str) else None,
        sqlstate=sqlstate if isinstance(sqlstate, str) else None,
        message=_cut(message),
    )


def _versions(value: object) -> dict[str, int]:
    items = _load(value)
    if not isinstance(items, dict):
        return {}
    return {str(k): v for k, v in items.items() if isinstance(v, int) and not isinstance(v, bool)}


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


# -- what the workers do -----------------------------------------------------------------------


def stop_reason(ledger: Ledger, total: int) -> str | None:
    """Why no worker may start another target: ``halted`` (more failures than the budget),
    ``paused``, ``done`` (every target claimed); None to go on."""
    if len(ledger.failed) > ledger.budget:
        return "halted"
    if ledger.paused:
        return "paused"
    if ledger.next >= total:
        return "done"
    return None


def claim(ledger: Ledger, total: int) -> tuple[Ledger, int] | None:
    """The ledger with the next target claimed (running), and its index; None when
    ``stop_reason`` says to stop."""
    if stop_reason(ledger, total) is not None:
        return None
    index = ledger.next
    return replace(ledger, next=index + 1, running=ledger.running | {index}), index


def record(
    ledger: Ledger,
    index: int,
    *,
    name: str,
    ok: bool,
    version: str | None,
    rows: int = 0,
    error: TargetError | None = None,
) -> Ledger:
    """The ledger with target index finished: succeeded, or failed (named in ``errors`` while
    fewer than MAX_ERRORS are); its version counted and its rows added. A target already
    recorded (a retried pod recording twice) leaves the ledger as it is."""
    if index in ledger.succeeded or index in ledger.failed:
        return ledger
    versions = dict(ledger.versions)
    versions[version or ""] = versions.get(version or "", 0) + 1
    changed = replace(
        ledger,
        running=ledger.running - {index},
        versions=MappingProxyType(versions),
        rows=ledger.rows + max(0, rows),
    )
    if ok:
        return replace(changed, succeeded=ledger.succeeded | {index})
    errors = ledger.errors
    if len(errors) < MAX_ERRORS:
        why = error or TargetError(name=name, version=version, sqlstate=None, message="failed")
        errors = (*errors, replace(why, message=_cut(why.message)))
    return replace(changed, failed=ledger.failed | {index}, errors=errors)
