"""Where a no-transaction migration resumes, and what must be checked before it does.

Such a migration cannot be atomic, so its run keeps a progress row (``history_layout``): which
of its statements are known done, and which one was sent and not yet known done. Statements
that may run in a transaction are each committed together with that row; a statement that
cannot (``CREATE INDEX CONCURRENTLY``, ``VACUUM``, ...) is marked ``running`` first. A run that
was killed, or failed, therefore leaves an exact account, except for that one statement: the
server may have finished it after the client went away (it notices a dead client only every
second). The next run starts at the first statement not known done, and settles the doubtful
one from the catalog: an index build whose index exists and is valid is done (an invalid one is
dropped and built again), an index drop whose index is gone is done, maintenance commands
(VACUUM, ANALYZE, REINDEX, ...) simply run again. Anything else cannot be told from the catalog:
the run is refused, naming ``repair``, which records what a person found.

Session settings (``SET``, ``SET ROLE``, ``SELECT set_config(...)``) among the statements
already done are run again first, so the rest runs as it would have. A history without progress
rows (written by an older kubemigrate), or statements changed since they ran, give no exact
account: the migration then runs again from its first statement, each index build or drop
settled from the catalog as above.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubemigrate.engine.migrate.history import BatchCheckpoint, VersionRecord
from kubemigrate.engine.migrate.results import Kind
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.step import Step
from kubemigrate.engine.pg.literals import literal, quote

if TYPE_CHECKING:  # the parser is loaded only when there is SQL to run
    from kubemigrate.engine.migrate.statements import Statement

INDEX_BUILD = "CREATE INDEX CONCURRENTLY"
INDEX_DROP = "DROP INDEX CONCURRENTLY"
REPEATABLE = frozenset(
    {
        "VACUUM",
        "ANALYZE",
        "REINDEX",
        "REINDEX CONCURRENTLY",
        "CLUSTER",
        "REFRESH MATERIALIZED VIEW",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY",
        "ALTER SYSTEM",
        "CHECKPOINT",
    }
)
"""Commands that may run again whatever they did before: running them again settles them."""


@dataclass(frozen=True)
class Resume:
    """How a run of a no-transaction step starts."""

    start: int = 1
    """The first statement to run (1-based); those before it are done."""
    check: frozenset[int] = frozenset()
    """Index statements to settle from the catalog before running them."""
    in_doubt: int | None = None
    """The statement the stopped run had sent and not known done, if it is ``start``."""
    note: str | None = None
    """What the run says about where it starts, when it does not start afresh."""
    batch: BatchCheckpoint | None = None
    """The checkpoint of the batched statement ``start``, when batches of it committed."""


FRESH = Resume()


def digest(statements: Sequence[Statement], count: int) -> str:
    """sha256 of the first ``count`` statements' text: whether a resumed run's done part is
    the one that ran."""
    h = hashlib.sha256()
    for statement in statements[:count]:
        h.update(statement.text.encode())
        h.update(b"\x00")
    return "sha256:" + h.hexdigest()


def resume_of(step: Step, record: VersionRecord | None) -> Resume:
    """Where step starts, from the history's last word on its version."""
    statements = step.statements
    if not statements or record is None or not _unfinished(step, record):
        return FRESH
    progress = record.progress
    if (
        progress is not None
        and progress.kind == step.kind
        and progress.done <= len(statements)
        and digest(statements, progress.done) == progress.digest
    ):
        start = progress.done + 1
        doubt = progress.running if progress.running == start else None
        check = (
            frozenset({doubt})
            if doubt is not None and _index(statements[doubt - 1])
            else frozenset()
        )
        batch = progress.batch
        if batch is None or batch.statement != start or start not in step.batches:
            batch = None
        return Resume(start, check, doubt, _note(step, start, doubt, batch), batch)
    check = frozenset(s.index for s in statements if _index(s))
    return Resume(
        1,
        check,
        None,
        "runs it again from statement 1, each index build or drop settled from the"
        " catalog (its last run stopped at a statement not recorded: an older"
        " kubemigrate wrote the history, or the statements changed since)",
    )


def _unfinished(step: Step, record: VersionRecord) -> bool:
    """Whether the version's last run stopped midway, so that statements of step may have
    run: incomplete (killed, or a rollback that failed midway), or an apply that failed."""
    if record.state == "incomplete":
        return True
    return step.kind == "apply" and record.state == "failed"


def _index(statement: Statement) -> bool:
    return (
        statement.command == INDEX_BUILD and statement.index_name is not None
    ) or statement.command == INDEX_DROP


def _note(step: Step, start: int, doubt: int | None, batch: BatchCheckpoint | None) -> str:
    assert step.statements is not None
    total = len(step.statements)
    if start > total:
        return f"finishes it: all {total} statements are done"
    statement = step.statements[start - 1]
    head = f"resumes at statement {start} of {total} (line {statement.line}, {statement.command})"
    if batch is not None:
        head += (
            f" after its batch {batch.batches} ({batch.rows} rows done; the committed batches"
            " are not run again)"
        )
    if doubt is None:
        return head
    return f"{head}, which was running when the last run stopped: {settle(step, doubt)}"


def settle(step: Step, index: int) -> str:
    """How a statement that may or may not have completed is settled, in words."""
    assert step.statements is not None
    statement = step.statements[index - 1]
    if statement.command == INDEX_BUILD and statement.index_name is not None:
        return (
            f"the index {statement.index_name} counts as done if it exists and is valid;"
            " an invalid one is dropped and built again"
        )
    if statement.command == INDEX_DROP:
        return "it counts as done if the index is gone, and runs again otherwise"
    if statement.command in REPEATABLE:
        return f"{statement.command} runs again"
    return "whether it completed cannot be told from the catalog"


def explain(step: Step, record: VersionRecord, resume: Resume) -> str:
    """What the next run of step does with a version its last run left midway, in words
    (for ``status`` and ``validate``)."""
    problem = undecided(step, resume)
    if problem is not None:
        return problem
    what = (
        f"its last {step.kind} stopped midway; the next {step.kind}"
        f" {resume.note or 'runs it again from statement 1'}"
    )
    if record.rollback_incomplete:
        what += (
            "; an apply instead applies it again from statement 1, each index build or"
            " drop settled from the catalog"
        )
    return what


def undecided(step: Step, resume: Resume) -> str | None:
    """Why step cannot resume without a person (the in-doubt statement cannot be settled),
    naming ``repair``; None when it can."""
    if resume.in_doubt is None or resume.in_doubt in resume.check:
        return None
    assert step.statements is not None
    statement = step.statements[resume.in_doubt - 1]
    if statement.command in REPEATABLE:
        return None
    what = (
        "its index has no name to look for"
        if statement.command == INDEX_BUILD
        else f"{statement.command} leaves nothing the engine can check"
    )
    return (
        f"its last {step.kind} stopped while statement {statement.index} (line"
        f" {statement.line}, {statement.command}) was running, and whether that completed"
        f" cannot be told from the catalog ({what}). Check the database, then run repair:"
        f" it records the statement as not done, so that the next {step.kind} runs it"
        " again (undo what it left first), or, given the version as completed, as done"
    )


def replayed(statements: Sequence[Statement], start: int) -> list[Statement]:
    """The statements before ``start`` that set session state, to run again first."""
    return [s for s in statements[: start - 1] if _sets_session(s)]


def _sets_session(statement: Statement) -> bool:
    if statement.command == "SET":
        return not statement.tree.get("VariableSetStmt", {}).get("is_local", False)
    if statement.command != "SELECT":
        return False
    select = statement.tree.get("SelectStmt", {})
    targets = select.get("targetList") or []
    return (
        bool(targets)
        and "fromClause" not in select
        and all(_calls_set_config(t.get("ResTarget", {}).get("val", {})) for t in targets)
    )


def _calls_set_config(node: dict[str, object]) -> bool:
    call = node.get("FuncCall")
    if not isinstance(call, dict):
        return False
    names = [n.get("String", {}).get("sval") for n in call.get("funcname", [])]
    return names[-1:] == ["set_config"]


BATCH_COLUMNS = ("batch_statement", "batches", "batch_rows", "last_key", "batch_size")


class ProgressSql:
    """The progress row's SQL for one step of one run (literals: it travels with other
    statements in one message)."""

    def __init__(self, table: str, step: Step, run_id: str, sql_checksum: str) -> None:
        self.table = table
        self.step = step
        self.key = literal(list(step.key)) + "::numeric[]"
        self.run_id = run_id
        self.checksum = sql_checksum

    def start(self, done: int, *, keep_batch: bool = False) -> str:
        """The row of a run starting after its first ``done`` statements; ``keep_batch``:
        keep the checkpoint of the batched statement it resumes."""
        step = self.step
        batch = "" if keep_batch else ", " + ", ".join(f"{c} = NULL" for c in BATCH_COLUMNS)
        total = len(step.statements or ())
        return (
            f"INSERT INTO {self.table} (version_key, version, run_id, kind, checksum,"
            f" statements, done, done_digest, running) VALUES ({self.key},"
            f" {quote(step.version)}, '{self.run_id}', {quote(step.kind)},"
            f" {quote(self.checksum)}, {total}, {done}, {quote(self._digest(done))}, NULL)"
            " ON CONFLICT (version_key) DO UPDATE SET run_id = excluded.run_id,"
            " version = excluded.version, kind = excluded.kind,"
            " checksum = excluded.checksum, statements = excluded.statements,"
            " done = excluded.done, done_digest = excluded.done_digest, running = NULL,"
            f" updated_at = clock_timestamp(){batch}"
        )

    def checkpoint(
        self, statement: int, batches: int, rows: int, last_key: str | None, size: int
    ) -> str:
        """The checkpoint of a batch, in the batch's transaction. Its values are literals, so
        that it travels in one message with the role reset and the ``COMMIT``."""
        return (
            f"UPDATE {self.table} SET batch_statement = {statement}, batches = {batches},"
            f" batch_rows = {rows}, last_key = {literal(last_key)}::text, batch_size = {size},"
            f" updated_at = clock_timestamp() WHERE version_key = {self.key}"
        )

    def running(self, index: int) -> str:
        return self._update(f"running = {index}")

    def done(self, index: int) -> str:
        return self._update(
            f"done = {index}, done_digest = {quote(self._digest(index))}, running = NULL"
        )

    def settled(self) -> str:
        """The run stopped knowing where it is (a failure): nothing is in doubt."""
        return self._update("running = NULL")

    def finished(self) -> str:
        return f"DELETE FROM {self.table} WHERE version_key = {self.key}"

    def _update(self, assignments: str) -> str:
        return (
            f"UPDATE {self.table} SET {assignments}, updated_at = clock_timestamp()"
            f" WHERE version_key = {self.key}"
        )

    def _digest(self, count: int) -> str:
        return digest(self.step.statements or (), count)


def unfinished(
    records: Mapping[tuple[int, ...], VersionRecord],
    sources: Mapping[tuple[int, ...], MigrationSource],
    server_version: int,
) -> dict[tuple[int, ...], str]:
    """For each version a run left midway (incomplete, or a no-transaction migration that
    failed), what the next run will do, in words."""
    notes = {}
    for key, record in records.items():
        source = sources.get(key)
        if record.state not in ("incomplete", "failed") or source is None:
            continue
        kind: Kind = "rollback" if record.rollback_incomplete else "apply"
        if kind == "rollback" and source.down_sql is None:
            notes[key] = "its rollback stopped midway, and it has no rollback SQL now"
            continue
        step = Step.of(source, kind, server_version)
        if record.state == "failed" and not step.stepwise:
            continue  # rolled back whole: the next apply simply runs it
        notes[key] = explain(step, record, resume_of(step, record))
    return notes
