"""The run of a list of steps: batches where they qualify, one at a time otherwise, each
result reported as soon as it is known, and nothing after the first failure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing

from kubemigrate.engine.migrate import planning
from kubemigrate.engine.migrate.batched import MIN_SERVER, BatchRunner, batchable
from kubemigrate.engine.migrate.dryrun import dry_run as run_dry_run
from kubemigrate.engine.migrate.nontransactional import run_non_transactional
from kubemigrate.engine.migrate.progress import resume_of
from kubemigrate.engine.migrate.results import MigrationResult
from kubemigrate.engine.migrate.step import RunContext, Step
from kubemigrate.engine.migrate.transactional import TransactionalRunner

ResultCallback = Callable[[MigrationResult], None]


class RunLoop:
    """Runs one call's steps on its context; ``records``: the history as the call read it
    under the lock (where no-transaction steps resume)."""

    def __init__(
        self,
        ctx: RunContext,
        records: planning.Records,
        *,
        on_progress: Callable[[str], None] | None,
        on_result: ResultCallback | None,
    ) -> None:
        self.ctx = ctx
        self.records = records
        self.on_progress = on_progress
        self.on_result = on_result

    def run(self, steps: list[Step], *, dry_run: bool) -> list[MigrationResult]:
        """The steps' results; ``ctx.activity.doing`` names what was running if it raises."""
        results = self._run(steps, dry_run=dry_run)
        self.ctx.activity.doing = None
        return results

    def _run(self, steps: list[Step], *, dry_run: bool) -> list[MigrationResult]:
        ctx = self.ctx
        results: list[MigrationResult] = []
        if dry_run:
            ctx.activity.doing = "the dry run"
            self._collect(run_dry_run(ctx, steps), results)
            return results
        runner = TransactionalRunner(ctx)
        batches = BatchRunner(ctx, runner)
        can_batch = ctx.session.server_version >= MIN_SERVER
        for together, segment in _segments(steps, batch=can_batch):
            if together:
                # Each result is reported as soon as its batch is back, not at the end.
                if not self._collect(runner.flush(), results):
                    return results
                with closing(batches.run(segment)) as batched:
                    if not self._collect(batched, results):
                        return results
                continue
            if not self._collect(self._one_at_a_time(runner, segment), results):
                return results
        self._collect(runner.flush(), results)
        return results

    def _one_at_a_time(
        self, runner: TransactionalRunner, segment: list[Step]
    ) -> Iterator[MigrationResult]:
        """segment's results as its steps run one by one; the caller stops at a failure, and
        no step after it runs (a generator runs its next step only when asked)."""
        for index, step in enumerate(segment):
            self.ctx.activity.doing = f"{step.kind} of migration {step.version}"
            if self.on_progress is not None:
                self.on_progress(f"{step.kind} {step.version} {step.source.description}".rstrip())
            if not step.stepwise:
                done = runner.run(step, defer=index + 1 < len(segment))
            else:
                done = runner.flush()
                if all(r.ok for r in done):
                    resume = resume_of(step, self.records.get(step.key))
                    done.append(run_non_transactional(self.ctx, step, resume))
            yield from done

    def _collect(self, done: Iterable[MigrationResult], results: list[MigrationResult]) -> bool:
        """Report and keep done's results (as they come); False if one failed."""
        for result in done:
            results.append(result)
            if self.on_progress is not None:
                self.on_progress(summary(result))
            if self.on_result is not None:
                self.on_result(result)
            if not result.ok:
                return False
        return True


def _segments(steps: Sequence[Step], *, batch: bool) -> Iterator[tuple[bool, list[Step]]]:
    """steps in runs: (True, steps) for two or more batchable ones in a row, else
    (False, steps) to run one at a time."""
    alone: list[Step] = []
    index = 0
    while index < len(steps):
        end = index
        while batch and end < len(steps) and batchable(steps[end]):
            end += 1
        if end - index >= 2:
            if alone:
                yield False, alone
                alone = []
            yield True, list(steps[index:end])
            index = end
        else:
            alone.append(steps[index])
            index += 1
    if alone:
        yield False, alone


def summary(result: MigrationResult) -> str:
    """One line on how a migration's run ended, for the progress callback."""
    if result.ok:
        return (
            f"{result.kind} {result.version}: {result.status} in"
            f" {result.duration_seconds * 1000:.0f} ms, {result.rows_affected} row(s)"
        )
    where = f" at statement {result.statement_index}" if result.statement_index else ""
    where += f", line {result.line}" if result.line else ""
    return f"{result.kind} {result.version}: failed{where}: [{result.sqlstate}] {result.error}"
