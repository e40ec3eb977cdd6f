"""What only a person can settle: the statement a no-transaction run stopped in, when the
catalog cannot tell whether it completed (see ``progress``). ``repair`` records the decision in
the progress row and as a history row of kind repair naming the statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from kubemigrate.engine.errors import InvalidSources
from kubemigrate.engine.migrate import planning
from kubemigrate.engine.migrate.checksum import sql_checksum
from kubemigrate.engine.migrate.history import VersionRecord
from kubemigrate.engine.migrate.progress import ProgressSql, resume_of, undecided
from kubemigrate.engine.migrate.results import MigrationResult
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.step import RunContext, Step, history_row, now, result_of
from kubemigrate.engine.migrate.versions import version_key


def settle_in_doubt(
    ctx: RunContext, records: planning.Records, sources: planning.Sources, completed: Sequence[str]
) -> list[MigrationResult]:
    """Record each undecidable statement as not done, or as done for the versions in
    completed; InvalidSources for a completed version with nothing to settle."""
    done_keys = {_key(v) for v in completed}
    results = []
    for key, record in sorted(records.items()):
        source = sources.get(key)
        step = _in_doubt(ctx, record, source)
        if step is None:
            continue
        results.append(_settle(ctx, step, record, key in done_keys))
        done_keys.discard(key)
    if done_keys:
        versions = ", ".join(".".join(map(str, k)) for k in sorted(done_keys))
        raise InvalidSources(
            f"nothing to record as completed for version(s) {versions}: no"
            " run of theirs stopped in a statement the engine cannot settle"
        )
    return results


def _key(version: str) -> tuple[int, ...]:
    try:
        return version_key(version)
    except ValueError as exc:
        raise InvalidSources(f"invalid version to record as completed: {exc}") from None


def _in_doubt(
    ctx: RunContext, record: VersionRecord, source: MigrationSource | None
) -> Step | None:
    """The step whose stopped run needs a person, if record's is one."""
    progress = record.progress
    if progress is None or progress.running is None or source is None:
        return None
    if progress.kind == "rollback" and source.down_sql is None:
        return None
    step = Step.of(source, progress.kind, ctx.session.server_version)
    return step if undecided(step, resume_of(step, record)) is not None else None


def _settle(ctx: RunContext, step: Step, record: VersionRecord, done: bool) -> MigrationResult:
    assert record.progress is not None and record.progress.running is not None
    index = record.progress.running
    sql = ProgressSql(ctx.history.table("progress"), step, str(ctx.run_id), sql_checksum(step.sql))
    at = now()
    row = replace(
        history_row(
            ctx,
            Step(step.source, "repair", ""),
            "success",
            started_at=at,
            finished_at=at,
            duration=0.0,
        ),
        statement_index=index,
    )
    ctx.history.append(row, also=sql.done(index) if done else sql.settled())
    ctx.progress(
        f"repair {step.version}: statement {index} of its {step.kind} recorded as"
        + (" done" if done else f" not done; the next {step.kind} runs it again")
    )
    return result_of(row)
