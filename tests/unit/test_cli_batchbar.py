"""The CLI's view of batched steps: a rich bar on a terminal, JSON lines with --json, and a
line every so often otherwise (cli/batchbar)."""

from __future__ import annotations

import io
import json

from kubemigrate.cli.batchbar import BatchReporter, summary
from kubemigrate.cli.output import Output
from kubemigrate.engine import BatchProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(rows: int, state: str = "running") -> BatchProgress:
    return BatchProgress(
        version="7",
        kind="apply",
        statement=2,
        line=3,
        state=state,  # type: ignore[arg-type]
        batches=rows // 1000,
        rows=rows,
        batch_size=1000,
        estimate=10_000,
        estimate_source="planner",
        rate=5000.0,
        eta_seconds=(10_000 - rows) / 5000,
    )


def test_json_lines_on_stderr() -> None:
    stream = io.StringIO()
    reporter = BatchReporter(Output(), as_json=True, stream=stream)
    reporter(_progress(1000))
    reporter(_progress(10_000, "done"))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["state"], e["rows"]) for e in lines] == [
        ("batch", "running", 1000),
        ("batch", "done", 10_000),
    ]
    assert lines[0]["estimate"] == 10_000 and lines[0]["eta_seconds"] == 1.8


def test_a_bar_on_a_terminal() -> None:
    stream = _Terminal()
    reporter = BatchReporter(Output(), as_json=False, stream=stream)
    reporter(_progress(5000))
    reporter(_progress(10_000, "done"))
    reporter.close()
    drawn = stream.getvalue()
    assert "apply 7, statement 2" in drawn
    assert "10000/10000" in drawn


def test_plain_lines_elsewhere() -> None:
    stream = io.StringIO()
    reporter = BatchReporter(Output(), as_json=False, stream=stream)
    reporter(_progress(1000))
    reporter(_progress(2000))  # within 10 seconds of the last line: not written
    reporter(_progress(10_000, "done"))
    assert stream.getvalue().splitlines() == [
        summary(_progress(1000)),
        summary(_progress(10_000, "done")),
    ]
    assert "1,000 rows of about 10000, 5,000 rows/s, ETA 2 s" in summary(_progress(1000))
