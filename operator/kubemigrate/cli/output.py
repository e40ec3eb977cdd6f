"""How the CLI shows things: tables like ``flyway info``, durations, JSON, one-line errors.

Pure formatting, no database and no Kubernetes: every string that leaves the CLI passes through
``redact`` here, so a password in a URL or a driver's message never reaches a terminal or a log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

from kubemigrate.engine import redact

if TYPE_CHECKING:  # the results module is loaded by the commands that produce them
    from kubemigrate.engine import VersionState

J = TypeVar("J")

STATUS_HEADERS = ("Version", "Description", "State", "Applied at (UTC)", "Duration", "Rollback")


def status_table(rows: Sequence[VersionState]) -> str:
    """The rows as a bordered table, one line per version; a note when there are none."""
    if not rows:
        return "No migrations found."
    return table(
        STATUS_HEADERS,
        [
            (
                r.version,
                r.description,
                state_label(r),
                format_time(r.applied_at),
                format_duration(r.duration_seconds),
                "yes" if r.rollback_available else "no",
            )
            for r in rows
        ],
    )


def state_label(row: VersionState) -> str:
    """``Applied``, ``Rolled back``, ``Failed [42601]``: the state as a person reads it."""
    label = row.state.replace("_", " ").capitalize()
    return f"{label} [{row.sqlstate}]" if row.sqlstate else label


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table with +---+ borders, columns as wide as their widest cell."""
    body = [[_one_line(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([rule, line(headers), rule, *(line(r) for r in body), rule])


def format_duration(seconds: float | None) -> str:
    """``-``, ``850µs``, ``12ms``, ``1.23s``, ``2m03s``, ``1h02m``: short and readable."""
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_time(when: datetime | None) -> str:
    """A timestamp to the second in UTC (naive ones are taken as UTC), or ``-``."""
    if when is None:
        return "-"
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def redacted(value: J, clean: Callable[[str], str]) -> J:
    """A JSON-like value (a result for --json or a termination log) with every string cleaned:
    values are masked before a result is shortened to fit, so no cut can split a secret."""
    return cast(J, _cleaned(value, clean))


def _cleaned(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {k: _cleaned(v, clean) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v, clean) for v in value]
    return value


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Output:
    """Where the CLI writes: results to stdout, progress and errors to stderr, all redacted."""

    def __init__(
        self,
        *,
        verbose: bool = False,
        secrets: Sequence[str] = (),
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.verbose = verbose
        self.secrets = tuple(s for s in secrets if s)
        self._out = stdout or sys.stdout
        self._err = stderr or sys.stderr

    def clean(self, text: str) -> str:
        """text with every URL password and known secret masked."""
        return redact(text, *self.secrets)

    def say(self, text: str) -> None:
        """A result line, on stdout."""
        print(self.clean(text), file=self._out, flush=True)

    def verbatim(self, text: str) -> None:
        """The user's own files as given (``manifests``), on stdout and not redacted: a URL in
        a migration's SQL is data to keep byte for byte, and the command reads no secret."""
        self._out.write(text)
        self._out.flush()

    def detail(self, text: str) -> None:
        """A line shown with --verbose only, on stderr so stdout stays parseable."""
        if self.verbose:
            print(self.clean(text), file=self._err, flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {self.clean(_one_line(text))}", file=self._err, flush=True)

    def error(self, text: str) -> None:
        """The one line that explains a failure, on stderr."""
        print(f"error: {self.clean(_one_line(text))}", file=self._err, flush=True)

    def json(self, data: object) -> None:
        """data as indented JSON on stdout (redacted as text, so no secret survives)."""
        self.say(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))
