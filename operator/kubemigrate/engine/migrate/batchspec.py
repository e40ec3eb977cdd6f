"""Batched steps as a migration declares them: the marker line and its options.

A statement is batched when the line right before it is a marker::

    -- kubemigrate: batch size=10000
    UPDATE orders SET total_cents = round(total * 100)
    WHERE id IN (SELECT id FROM orders WHERE total_cents IS NULL ORDER BY id LIMIT :batch_size);

The statement stays plain SQL with two parameters: ``:batch_size`` (required) and ``:last_key``
(the keyset form: NULL before the first batch, then the largest key the previous batch
returned; the statement then ends in ``RETURNING <key>``). They are bound by the server
(``$1`` and ``$2``), never pasted into the text. Options are ``key=value`` words after
``batch``; a value with spaces is quoted (``estimate="SELECT count(*) FROM orders"``).

Everything here is pure text work, so a malformed marker is refused, with its file and line,
before anything connects.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubemigrate.engine.migrate.durations import parse_duration

if TYPE_CHECKING:  # the parser is loaded only when there is SQL to run
    from kubemigrate.engine.migrate.statements import Statement

MARKER = re.compile(r"\s*--\s*kubemigrate:\s*batch(?![\w-])(?P<options>.*)", re.IGNORECASE)
"""A marker line (the options after ``batch``)."""

_LOOSE = re.compile(r"\s*--\s*kubemigrate:\s*batch", re.IGNORECASE)
"""What looks meant as a marker (``batchsize=1``, ``batch-size``): refused, not ignored."""

PARAMETERS = {"batch_size": "$1", "last_key": "$2"}
"""The batch parameters, and the server-side parameter each is bound as."""

_MAX_SIZE = 10_000_000


class MarkerError(ValueError):
    """A malformed batch marker or batched statement; ``line`` is 1-based in its file."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.reason = message
        super().__init__(f"line {line}: {message}")


@dataclass(frozen=True)
class BatchSpec:
    """How a batched statement runs (the marker's options)."""

    size: int
    """Rows per batch (``:batch_size``); with ``target``, the first batch's size."""
    pause: float = 0.0
    """Seconds to wait between batches."""
    target: float | None = None
    """Adaptive batch size: aim at batches of this many seconds."""
    min_size: int = 1
    max_size: int | None = None
    """Bounds of the adaptive size (default: size / 100 and size * 100)."""
    max_lag: float | None = None
    """Wait before a batch while a standby's replication lag exceeds this many seconds."""
    estimate: str | None = None
    """A query returning how many rows are left to process (else the planner's estimate)."""
    synchronous_commit: str | None = None
    """``SET LOCAL synchronous_commit`` in each batch's transaction (``off``: a batch's commit
    does not wait for its WAL flush; a crash can lose the last batches together with their
    checkpoints). None: the server's setting."""
    line: int = 0
    """The marker's line."""

    @property
    def ceiling(self) -> int:
        return self.max_size or min(_MAX_SIZE, self.size * 100)

    @property
    def floor(self) -> int:
        return max(self.min_size, 1)


_OPTIONS = (
    "size=<rows>, pause=<duration>, target=<duration>, min_size=<rows>, max_size=<rows>,"
    " max_lag=<duration>, estimate=<query>, synchronous_commit=<on|off|local>"
)

_SYNCHRONOUS_COMMIT = ("on", "off", "local")
"""The values of ``synchronous_commit=``: the server's own (``remote_write`` and
``remote_apply`` ask more than a batch needs and are left out)."""


def parse_marker(options: str, line: int) -> BatchSpec:
    """The spec of a marker whose text after ``batch`` is options; MarkerError if malformed."""
    try:
        words = shlex.split(options, comments=False, posix=True)
    except ValueError as exc:
        raise MarkerError(line, f"batch marker: {exc}") from None
    values: dict[str, str] = {}
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not value:
            raise MarkerError(line, f"batch marker: {word!r} is not key=value (known: {_OPTIONS})")
        if name in values:
            raise MarkerError(line, f"batch marker: {name} given twice")
        values[name] = value
    if "size" not in values:
        raise MarkerError(line, "batch marker: size=<rows> is required")
    try:
        spec = _spec(values, line)
    except ValueError as exc:
        raise MarkerError(line, f"batch marker: {exc}") from None
    if spec.max_size is not None and spec.max_size < spec.floor:
        raise MarkerError(line, "batch marker: max_size is below min_size")
    return spec


def _spec(values: dict[str, str], line: int) -> BatchSpec:
    unknown = sorted(set(values) - {n.split("=")[0] for n in _OPTIONS.split(", ")})
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} (known: {_OPTIONS})")
    estimate = values.get("estimate")
    if estimate is not None and not estimate.strip():
        raise ValueError("estimate= needs a query")
    return BatchSpec(
        size=_rows(values, "size") or 0,
        pause=_seconds(values, "pause") or 0.0,
        target=_positive_seconds(values, "target"),
        min_size=_rows(values, "min_size") or 1,
        max_size=_rows(values, "max_size"),
        max_lag=_positive_seconds(values, "max_lag"),
        estimate=estimate,
        synchronous_commit=_choice(values, "synchronous_commit", _SYNCHRONOUS_COMMIT),
        line=line,
    )


def _choice(values: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = values.get(name)
    if raw is None:
        return None
    if raw.lower() not in allowed:
        raise ValueError(f"{name}={raw} is not one of {', '.join(allowed)}")
    return raw.lower()


def _rows(values: dict[str, str], name: str) -> int | None:
    raw = values.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_SIZE:
        raise ValueError(f"{name}={raw} is not a whole number from 1 to {_MAX_SIZE}")
    return int(raw)


def _seconds(values: dict[str, str], name: str) -> float | None:
    raw = values.get(name)
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw}: {exc}") from None


def _positive_seconds(values: dict[str, str], name: str) -> float | None:
    seconds = _seconds(values, name)
    if seconds is not None and seconds <= 0:
        raise ValueError(f"{name} must be more than 0")
    return seconds


def markers(sql: str) -> dict[int, BatchSpec]:
    """The batch markers of sql by line (1-based); MarkerError for the first malformed one."""
    found: dict[int, BatchSpec] = {}
    if "kubemigrate" not in sql:
        return found
    for number, text in enumerate(sql.split("\n"), start=1):
        if "kubemigrate" not in text:
            continue
        m = MARKER.match(text)
        if m is not None:
            found[number] = parse_marker(m["options"], number)
        elif _LOOSE.match(text):
            raise MarkerError(
                number, "malformed batch marker (expected '-- kubemigrate: batch size=<n>')"
            )
    return found


def has_batch_syntax(sql: str) -> bool:
    """Whether sql may hold a marker or a batch parameter (a cheap test before any work)."""
    return "kubemigrate" in sql or ":batch_size" in sql or ":last_key" in sql


@dataclass(frozen=True)
class Bound:
    """SQL with its batch parameters made server-side parameters, and where they were."""

    sql: str
    lines: dict[int, frozenset[str]]
    """line -> the parameters named on it."""


def bind(sql: str) -> Bound:
    """sql with ``:batch_size`` -> ``$1`` and ``:last_key`` -> ``$2`` wherever they are
    tokens (not in strings, comments or ``::`` casts), found by PostgreSQL's own scanner."""
    if ":batch_size" not in sql and ":last_key" not in sql:
        return Bound(sql, {})
    from pglast import parser  # noqa: PLC0415 - loaded only when needed

    try:
        tokens = list(parser.scan(sql))
    except parser.ParseError:  # an unterminated quote: the split reports it
        return Bound(sql, {})
    pieces: list[str] = []
    lines: dict[int, frozenset[str]] = {}
    at = 0
    for colon, word in itertools.pairwise(tokens):
        name = sql[word.start : word.end + 1]
        if colon.name != "ASCII_58" or word.start != colon.end + 1 or name not in PARAMETERS:
            continue
        pieces += [sql[at : colon.start], PARAMETERS[name]]
        at = word.end + 1
        line = sql.count("\n", 0, colon.start) + 1
        lines[line] = lines.get(line, frozenset()) | {name}
    pieces.append(sql[at:])
    return Bound("".join(pieces), lines)


_BATCHABLE = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


@dataclass(frozen=True)
class BatchedStatement:
    """A statement that runs in batches: its spec, and whether it is the keyset form."""

    index: int
    spec: BatchSpec
    keyset: bool
    """It names ``:last_key``."""
    returning: bool
    """It ends in ``RETURNING <one column>``: each batch's largest key is kept."""


def attach(
    statements: list[Statement], specs: dict[int, BatchSpec], bound: Bound
) -> dict[int, BatchedStatement]:
    """The batched statements by index: each marker bound to the statement starting on the
    next line. MarkerError for a marker before no statement, a statement that is no DML or
    lacks ``:batch_size``, a keyset one without ``RETURNING <key>``, and a batch parameter
    in a statement without a marker."""
    by_line = {s.line: s for s in statements}
    batched: dict[int, BatchedStatement] = {}
    for line, spec in specs.items():
        statement = by_line.get(line + 1)
        if statement is None:
            raise MarkerError(line, "batch marker is not on the line right before a statement")
        batched[statement.index] = _checked(statement, spec, _named(statement, bound))
    for statement in statements:
        if statement.index not in batched and _named(statement, bound):
            names = ", ".join(f":{n}" for n in sorted(_named(statement, bound)))
            raise MarkerError(
                statement.line,
                f"{names} in a statement without a batch marker on the line before it",
            )
    return batched


def _named(statement: Statement, bound: Bound) -> frozenset[str]:
    last = statement.line + statement.text.count("\n")
    names: frozenset[str] = frozenset()
    for line, found in bound.lines.items():
        if statement.line <= line <= last:
            names |= found
    return names


def _checked(statement: Statement, spec: BatchSpec, names: frozenset[str]) -> BatchedStatement:
    where = statement.line
    if statement.command not in _BATCHABLE:
        raise MarkerError(
            where,
            f"a batched statement must be INSERT, UPDATE, DELETE or MERGE, not {statement.command}",
        )
    if "batch_size" not in names:
        raise MarkerError(where, "a batched statement must use :batch_size (its LIMIT)")
    ((_, node),) = statement.tree.items()
    # PostgreSQL 18's grammar (pglast 7) holds it in returningClause, older ones returningList.
    returning = node.get("returningList") or (node.get("returningClause") or {}).get("exprs") or []
    if len(returning) > 1:
        raise MarkerError(where, "a batched statement may return one column (its key), not more")
    keyset = "last_key" in names
    if keyset and not returning:
        raise MarkerError(where, "a batched statement using :last_key must end in RETURNING <key>")
    return BatchedStatement(statement.index, spec, keyset, bool(returning))
