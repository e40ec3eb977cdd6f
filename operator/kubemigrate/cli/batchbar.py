"""How the CLI shows a batched statement's progress (``BatchProgress`` from the engine).

On a terminal: a progress bar (rich) on stderr with rows, estimate, rate and ETA. With
``--json``: one JSON object per line on stderr (``{"event": "batch", ...}``), so stdout stays
the one JSON document of the result. Otherwise (a Job's log): a line at most every 10 seconds,
and one when the statement is done. rich is imported only when a batch reports.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from kubemigrate.cli.output import Output
    from kubemigrate.engine import BatchProgress

_LOG_EVERY = 10.0


def _describe(p: BatchProgress) -> str:
    return f"{p.kind} {p.version}, statement {p.statement}"


def summary(p: BatchProgress) -> str:
    """One line: where a batched statement stands."""
    about = f" of about {p.estimate}" if p.estimate is not None else ""
    rate = f", {p.rate:,.0f} rows/s" if p.rate else ""
    eta = f", ETA {p.eta_seconds:,.0f} s" if p.eta_seconds is not None and p.state != "done" else ""
    why = f" ({p.detail})" if p.detail else ""
    return (
        f"{_describe(p)}: {p.state}{why}, batch {p.batches} (size {p.batch_size}),"
        f" {p.rows:,} rows{about}{rate}{eta}"
    )


class BatchReporter:
    """The ``on_batch`` callback of one CLI run; ``close`` ends a bar still drawn."""

    def __init__(self, out: Output, *, as_json: bool, stream: TextIO | None = None) -> None:
        self.out = out
        self.as_json = as_json
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and not as_json
        self._progress: Progress | None = None
        self._tasks: dict[tuple[str, str, int], TaskID] = {}
        self._logged = 0.0

    def __call__(self, p: BatchProgress) -> None:
        if self.as_json:
            line = json.dumps({"event": "batch", **asdict(p)}, default=str)
            print(self.out.clean(line), file=self.stream, flush=True)
        elif self.tty:
            self._draw(p)
        elif p.state == "done" or time.monotonic() - self._logged >= _LOG_EVERY:
            self._logged = time.monotonic()
            print(self.out.clean(summary(p)), file=self.stream, flush=True)

    def _draw(self, p: BatchProgress) -> None:
        from rich.console import Console  # noqa: PLC0415 - only when a batch reports
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("rows  {task.fields[rate]}  {task.fields[state]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.start()
        key = (p.kind, p.version, p.statement)
        fields: dict[str, Any] = {
            "rate": f"{p.rate:,.0f}/s" if p.rate else "",
            "state": p.state if p.state != "running" else f"batch {p.batches}",
        }
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(
                _describe(p), total=p.estimate, completed=p.rows, **fields
            )
        total = p.rows if p.state == "done" else p.estimate
        self._progress.update(self._tasks[key], total=total, completed=p.rows, **fields)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
