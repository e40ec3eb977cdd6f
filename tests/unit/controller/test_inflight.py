"""Runs in flight: a cancelled daemon leaves its run for the deletion handler, which cancels its
statement until it ends and says how it ended, without ever quoting the error's text."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from kubemigrate.controller.flows.inflight import InFlight, Run, outcome, stop
from kubemigrate.engine import ConnectionFailed, MigrationResult, RunReport

T0 = datetime(2024, 12, 20, tzinfo=UTC)


def report(status: str | None) -> RunReport:
    results = ()
    if status is not None:
        results = (
            MigrationResult(
                version="1",
                description="d",
                kind="apply",
                status=status,
                checksum="c",
                started_at=T0,
                finished_at=T0,
                duration_seconds=0.1,
                sqlstate=None if status == "success" else "57014",
                statement_index=None if status == "success" else 2,
            ),
        )
    return RunReport("r", "apply", T0, T0, results, "1")  # type: ignore[arg-type]


class Slow:
    """An engine call that blocks until cancelled, then fails as a cancelled statement does."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.cancels = 0

    def call(self) -> RunReport:
        self.cancelled.wait(10)
        return report("failed")

    def cancel(self) -> int:
        self.cancels += 1
        self.cancelled.set()
        return 1


def test_a_cancelled_daemon_leaves_the_run_for_the_deletion_handler() -> None:
    async def scenario() -> tuple[Run | None, Slow]:
        runs, slow = InFlight(), Slow()
        daemon = asyncio.ensure_future(runs.run("u1", "apply of version 1", slow.call, slow.cancel))
        await asyncio.sleep(0.05)
        daemon.cancel()  # kopf stops the daemon of an object being deleted
        await asyncio.gather(daemon, return_exceptions=True)
        run = runs.take("u1")
        assert run is not None and run.abandoned
        assert await stop(run, within=5, every=0.01)
        assert runs.take("u1") is None
        return run, slow

    run, slow = asyncio.run(scenario())
    assert run is not None and slow.cancels >= 1
    kind, reason, message = outcome(run)
    assert (kind, reason) == ("Normal", "ApplyCancelled")
    assert "57014" in message and "rolled back" in message


def test_a_run_that_returns_to_its_daemon_is_not_left_behind() -> None:
    async def scenario() -> Run | None:
        runs = InFlight()
        await runs.run("u1", "apply", lambda: report("success"), lambda: 0)
        return runs.take("u1")

    assert asyncio.run(scenario()) is None


def _done(value: object = None, error: BaseException | None = None) -> Run:
    loop = asyncio.new_event_loop()
    future: asyncio.Future[object] = loop.create_future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
    loop.close()
    return Run("apply of version 1", future, lambda: 0)


def test_outcomes_say_what_happened_and_quote_no_error_text() -> None:
    committed = outcome(_done(report("success")))
    assert committed[:2] == ("Warning", "CommittedBeforeDeletion")
    secret = ConnectionFailed('missing "=" after "TOPSECRET" in connection info string')
    failed = outcome(_done(error=secret))
    assert failed[1] == "ApplyCancelled" and "TOPSECRET" not in failed[2]
    untransactional = _done(report("failed"))
    untransactional.transactional = False
    assert "statements before statement 2 stay applied" in outcome(untransactional)[2]
