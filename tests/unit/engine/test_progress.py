"""Where a no-transaction migration resumes: pure, from the history's record and the SQL."""

from __future__ import annotations

from kubemigrate.engine.migrate.history import RecordState, RunProgress, VersionRecord
from kubemigrate.engine.migrate.progress import (
    FRESH,
    digest,
    replayed,
    resume_of,
    undecided,
)
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.step import Step
from kubemigrate.engine.migrate.versions import version_key

SQL = (
    "SET search_path = app;\n"
    "SET LOCAL lock_timeout = '1s';\n"
    "SELECT pg_catalog.set_config('role', 'owner', false);\n"
    "SELECT set_config('a.b', 'c', false), 1 FROM t;\n"
    "CREATE INDEX CONCURRENTLY a_name ON a (name);\n"
    "CREATE INDEX CONCURRENTLY ON a (id);\n"
    "VACUUM a;\n"
)


def step(sql: str = SQL) -> Step:
    return Step.of(MigrationSource("1", "m", sql, transactional=False), "apply", 150000)


def record(
    state: RecordState, done: int | None = None, running: int | None = None, sql: str = SQL
) -> VersionRecord:
    progress = None
    if done is not None:
        statements = step(sql).statements
        assert statements is not None
        progress = RunProgress("apply", len(statements), done, digest(statements, done), running)
    return VersionRecord(
        "1",
        version_key("1"),
        "m",
        state,
        "sha256:x",
        None,
        None,
        False,
        None,
        None,
        "apply",
        progress,
    )


def test_a_version_never_run_or_finished_starts_afresh() -> None:
    assert resume_of(step(), None) is FRESH
    assert resume_of(step(), record("applied")) is FRESH
    assert resume_of(step(), record("rolled_back")) is FRESH


def test_resume_at_the_first_statement_not_known_done() -> None:
    resume = resume_of(step(), record("failed", done=4))
    assert (resume.start, resume.in_doubt, resume.check) == (5, None, frozenset())
    assert resume.note == "resumes at statement 5 of 7 (line 5, CREATE INDEX CONCURRENTLY)"


def test_a_running_index_build_is_settled_from_the_catalog() -> None:
    resume = resume_of(step(), record("incomplete", done=4, running=5))
    assert (resume.start, resume.in_doubt, resume.check) == (5, 5, frozenset({5}))
    assert resume.note is not None and "a_name counts as done" in resume.note
    assert undecided(step(), resume) is None


def test_an_unnamed_index_build_cannot_be_settled() -> None:
    resume = resume_of(step(), record("incomplete", done=5, running=6))
    assert resume.in_doubt == 6 and resume.check == frozenset()
    problem = undecided(step(), resume)
    assert problem is not None and "its index has no name" in problem and "repair" in problem


def test_maintenance_simply_runs_again() -> None:
    resume = resume_of(step(), record("incomplete", done=6, running=7))
    assert resume.note is not None and resume.note.endswith("VACUUM runs again")
    assert undecided(step(), resume) is None


def test_changed_done_statements_or_no_progress_run_again_settling_every_index() -> None:
    changed = SQL.replace("app", "other")
    for resumed in (
        resume_of(step(changed), record("failed", done=4)),
        resume_of(step(), record("incomplete")),
    ):
        assert (resumed.start, resumed.in_doubt, resumed.check) == (1, None, frozenset({5}))
        assert resumed.note is not None and "not recorded" in resumed.note


def test_session_settings_among_the_done_statements_are_run_again() -> None:
    statements = step().statements
    assert statements is not None
    assert [s.index for s in replayed(statements, 5)] == [1, 3]
    assert replayed(statements, 1) == []
