"""PLACEHOLDER: replaced by the fleetworker branch's module (same contract)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

TARGETS_KEY = "targets"
MAX_ERRORS = 20
MAX_MESSAGE = 512


@dataclass(frozen=True)
class TargetError:
    name: str
    version: str | None
    sqlstate: str | None
    message: str


@dataclass(frozen=True)
class Ledger:
    next: int = 0
    budget: int = 0
    paused: bool = False
    running: frozenset[int] = frozenset()
    succeeded: frozenset[int] = frozenset()
    failed: frozenset[int] = frozenset()
    errors: tuple[TargetError, ...] = ()
    versions: Mapping[str, int] = field(default_factory=dict)
    rows: int = 0


def parse_ranges(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if hi else a
        except ValueError:
            continue
        out.update(range(a, b + 1))
    return frozenset(out)


def format_ranges(indexes: Iterable[int]) -> str:
    parts: list[str] = []
    items = sorted(set(indexes))
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        parts.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(parts)


def new_ledger(budget: int, paused: bool = False) -> dict[str, str]:
    return ledger_data(Ledger(budget=budget, paused=paused))


def read_ledger(data: Mapping[str, str] | None) -> Ledger:
    data = data or {}
    try:
        errors = tuple(TargetError(**e) for e in json.loads(data.get("errors") or "[]"))
        versions = {str(k): int(v) for k, v in json.loads(data.get("versions") or "{}").items()}
    except (ValueError, TypeError):
        errors, versions = (), {}

    def num(key: str) -> int:
        try:
            return int(data.get(key) or 0)
        except ValueError:
            return 0

    return Ledger(
        next=num("next"),
        budget=num("budget"),
        paused=data.get("paused") == "true",
        running=parse_ranges(data.get("running", "")),
        succeeded=parse_ranges(data.get("succeeded", "")),
        failed=parse_ranges(data.get("failed", "")),
        errors=errors,
        versions=versions,
        rows=num("rows"),
    )


def ledger_data(ledger: Ledger) -> dict[str, str]:
    return {
        "next": str(ledger.next),
        "budget": str(ledger.budget),
        "paused": "true" if ledger.paused else "false",
        "running": format_ranges(ledger.running),
        "succeeded": format_ranges(ledger.succeeded),
        "failed": format_ranges(ledger.failed),
        "errors": json.dumps([e.__dict__ for e in ledger.errors]),
        "versions": json.dumps(dict(ledger.versions), sort_keys=True),
        "rows": str(ledger.rows),
    }


def stop_reason(ledger: Ledger, total: int) -> str | None:
    if len(ledger.failed) > ledger.budget:
        return "halted"
    if ledger.paused:
        return "paused"
    if ledger.next >= total:
        return "done"
    return None


def claim(ledger: Ledger, total: int) -> tuple[Ledger, int] | None:
    if stop_reason(ledger, total) is not None:
        return None
    i = ledger.next
    return replace(ledger, next=i + 1, running=ledger.running | {i}), i


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
    versions = dict(ledger.versions)
    versions[version or ""] = versions.get(version or "", 0) + 1
    errors = ledger.errors
    if not ok and error is not None and len(errors) < MAX_ERRORS:
        errors = (*errors, replace(error, message=error.message[:MAX_MESSAGE]))
    return replace(
        ledger,
        running=ledger.running - {index},
        succeeded=ledger.succeeded | {index} if ok else ledger.succeeded,
        failed=ledger.failed | {index} if not ok else ledger.failed,
        errors=errors,
        versions=versions,
        rows=ledger.rows + rows,
    )
