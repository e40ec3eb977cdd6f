"""No-transaction migrations that stopped midway (killed, or failed) resume where they stopped:
statement by statement progress, the statement that was running settled from the catalog, and
repair for what the catalog cannot tell. No manual step otherwise, and no 42P07."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from integration.cli.cli_helpers import run_cli
from integration.engine.engine_helpers import history, query, src
from kubemigrate.engine.errors import NeedsRepair
from kubemigrate.engine.migrate.migrator import Migrator
from kubemigrate.engine.migrate.sources import MigrationSource

EngineFactory = Callable[..., Migrator]

_RUNNER = textwrap.dedent("""
    import json, sys
    from kubemigrate.engine.migrate.migrator import Migrator
    from kubemigrate.engine.migrate.sources import MigrationSource
    url, command, specs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sources = [MigrationSource(v, "m" + v, up, down, transactional=tx)
               for v, up, down, tx in specs]
    engine = Migrator(url)
    if command == "apply":
        engine.apply(sources)
    else:
        engine.rollback(sources, target="0")
""")

SLOW = """
CREATE TABLE a (id int, name text);
INSERT INTO a SELECT g, 'n' || g FROM generate_series(1, 40) g;
CREATE FUNCTION slow(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$ BEGIN PERFORM pg_sleep(0.025); RETURN i; END $$;
"""
"""A table whose index on slow(id) takes about a second to build."""


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _running(url: str, fragment: str) -> bool:
    return query(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
        " 'kubemigrate' AND state = 'active' AND query LIKE %s",
        [f"%{fragment}%"],
    ) == [(1,)]


def _no_runner(url: str) -> bool:
    return query(
        url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kubemigrate'"
    ) == [(0,)]


@contextmanager
def _runner(url: str, command: str, sources: list[MigrationSource]) -> Iterator[int]:
    """An engine in a process of its own, running command over sources; yields its pid, and
    leaves it dead (killed if need be), its backends gone."""
    specs = [[s.version, s.up_sql, s.down_sql, s.transactional] for s in sources]
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, url, command, json.dumps(specs)])
    try:
        yield proc.pid
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            os.kill(proc.pid, signal.SIGCONT)
        proc.wait(10)
        _wait_for(lambda: _no_runner(url))


def _kill_while(
    url: str,
    command: str,
    sources: list[MigrationSource],
    fragment: str,
    *,
    finish_first: Callable[[], bool] | None = None,
) -> None:
    """Run command in a process; once the statement holding fragment runs, kill -9 it, or,
    with ``finish_first``, stop it (SIGSTOP: it reads no reply), let the server finish the
    statement until finish_first() holds, and only then kill it: the window in which the
    server has done the statement and the client has not recorded it."""
    with _runner(url, command, sources) as pid:
        _wait_for(lambda: _running(url, fragment))
        if finish_first is not None:
            os.kill(pid, signal.SIGSTOP)
            _wait_for(finish_first)
        os.kill(pid, signal.SIGKILL)


def _index_valid(url: str, name: str) -> bool | None:
    rows = query(url, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
    return rows[0][0] if rows else None


def _indexes(url: str) -> list[tuple[str, bool]]:
    return query(
        url,
        """SELECT c.relname::text, i.indisvalid FROM pg_index i
                         JOIN pg_class c ON c.oid = i.indexrelid
                         WHERE i.indrelid = 'a'::regclass ORDER BY 1""",
    )


def _states(engine: Migrator, sources: list[MigrationSource]) -> list[str]:
    return [s.state for s in engine.status(sources)]


def test_an_index_build_finished_by_the_server_after_a_kill_counts_as_done(
    engine: Migrator, database_url: str
) -> None:
    query(database_url, SLOW)
    sources = [
        src(
            "1",
            "CREATE INDEX CONCURRENTLY a_slow ON a (slow(id));\n"
            "CREATE INDEX CONCURRENTLY a_name ON a (name);",
            transactional=False,
        )
    ]
    _kill_while(
        database_url,
        "apply",
        sources,
        "a_slow",
        finish_first=lambda: _index_valid(database_url, "a_slow") is True,
    )
    assert _states(engine, sources) == ["incomplete"]
    (state,) = engine.status(sources)
    assert state.resume is not None and "resumes at statement 1 of 2" in state.resume
    assert "a_slow counts as done if it exists and is valid" in state.resume
    report = engine.apply(sources)
    assert report.ok, report.failed
    assert _indexes(database_url) == [("a_name", True), ("a_slow", True)]
    assert [r["status"] for r in history(database_url)] == ["pending", "pending", "success"]


def test_a_kill_in_the_second_of_two_builds_resumes_at_the_second(database_url: str) -> None:
    query(database_url, SLOW)
    sources = [
        src(
            "1",
            "CREATE INDEX CONCURRENTLY a_name ON a (name);\n"
            "CREATE INDEX CONCURRENTLY a_slow ON a (slow(id));",
            transactional=False,
        )
    ]
    _kill_while(database_url, "apply", sources, "a_slow")
    assert _index_valid(database_url, "a_name") is True
    assert _index_valid(database_url, "a_slow") in (False, None)  # the kill stopped it
    messages: list[str] = []
    report = Migrator(database_url, on_progress=messages.append).apply(sources)
    assert report.ok, report.failed
    assert _indexes(database_url) == [("a_name", True), ("a_slow", True)]
    assert any("resumes at statement 2 of 2" in m for m in messages), messages


def test_a_failing_second_statement_resumes_after_the_first_once_fixed(
    engine: Migrator, database_url: str
) -> None:
    """No kill: the first index stays built, and a re-run must not build it again (42P07)."""
    query(
        database_url, "CREATE TABLE a (id int, name text);INSERT INTO a VALUES (1, 'x'), (1, 'y');"
    )
    sources = [
        src(
            "1",
            "CREATE INDEX CONCURRENTLY a_name ON a (name);\n"
            "CREATE UNIQUE INDEX CONCURRENTLY a_id ON a (id);",
            transactional=False,
        )
    ]
    failed = engine.apply(sources).failed
    assert failed is not None and (failed.sqlstate, failed.statement_index) == ("23505", 2)
    (state,) = engine.status(sources)
    assert state.state == "failed"
    assert state.resume == (
        "its last apply stopped midway; the next apply resumes at"
        " statement 2 of 2 (line 2, CREATE INDEX CONCURRENTLY)"
    )
    validation = engine.validate(sources)
    assert validation.ok and validation.incomplete == (f"migration 1: {state.resume}",)

    query(database_url, "DELETE FROM a WHERE name = 'y'")
    report = engine.apply(sources)
    assert report.ok, report.failed
    assert _indexes(database_url) == [("a_id", True), ("a_name", True)]
    assert _states(engine, sources) == ["applied"]
    assert query(database_url, "SELECT count(*) FROM kubemigrate.progress") == [(0,)]


def test_an_edited_failing_statement_resumes_when_the_done_ones_are_unchanged(
    engine: Migrator, database_url: str
) -> None:
    query(database_url, "CREATE SCHEMA app; CREATE TABLE app.a (id int, name text);")
    first = "SET search_path = app;\nCREATE INDEX CONCURRENTLY a_name ON a (name);\n"
    broken = src("1", first + "CREATE INDEX CONCURRENTLY a_id ON a (nope);", transactional=False)
    failed = engine.apply([broken]).failed
    assert failed is not None and (failed.sqlstate, failed.statement_index) == ("42703", 3)
    fixed = src("1", first + "CREATE INDEX CONCURRENTLY a_id ON a (id);", transactional=False)
    report = engine.apply([fixed])  # the SET is run again before statement 3
    assert report.ok, report.failed
    assert query(
        database_url,
        "SELECT indexrelid::regclass::text FROM pg_index"
        " WHERE indrelid = 'app.a'::regclass ORDER BY 1",
    ) == [("app.a_id",), ("app.a_name",)]


def test_statements_that_may_run_in_a_transaction_commit_with_their_progress(
    engine: Migrator, database_url: str
) -> None:
    source = src(
        "1",
        "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1) -- a trailing comment\n;\n"
        "BEGIN;\nINSERT INTO a VALUES (2);\nINSERT INTO a VALUES (3);\nCOMMIT;\n"
        "INSERT INTO a VALUES (1/0);",
        transactional=False,
    )
    failed = engine.apply([source]).failed
    assert failed is not None and (failed.sqlstate, failed.statement_index) == ("22012", 7)
    assert query(database_url, "SELECT done, running FROM kubemigrate.progress") == [(6, None)]
    fixed = src("1", source.up_sql.replace("1/0", "4"), transactional=False)
    report = engine.apply([fixed])
    assert report.ok, report.failed
    assert sorted(query(database_url, "SELECT id FROM a")) == [(1,), (2,), (3,), (4,)]


def test_a_killed_rollback_resumes_and_leaves_no_invalid_index(
    engine: Migrator, database_url: str
) -> None:
    query(database_url, "CREATE TABLE a (id int, name text)")
    sources = [
        src(
            "1",
            "CREATE INDEX CONCURRENTLY a_name ON a (name);",
            "DROP INDEX CONCURRENTLY a_name;",
            transactional=False,
        )
    ]
    assert engine.apply(sources).ok
    with psycopg.connect(database_url, autocommit=True) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM a")  # the drop marks the index invalid, then waits
        _kill_while(
            database_url,
            "rollback",
            sources,
            "DROP INDEX CONCURRENTLY",
            finish_first=lambda: _index_valid(database_url, "a_name") is False,
        )
        reader.execute("ROLLBACK")
    assert _index_valid(database_url, "a_name") is False
    (state,) = engine.status(sources)
    assert state.state == "incomplete" and state.resume is not None
    assert "the next rollback resumes at statement 1 of 1" in state.resume
    report = engine.rollback(sources, target="0")
    assert [r.status for r in report.results] == ["success"]
    assert _index_valid(database_url, "a_name") is None
    assert _states(engine, sources) == ["rolled_back"]


def test_what_the_catalog_cannot_tell_is_refused_naming_repair(
    make_engine: EngineFactory, database_url: str
) -> None:
    query(database_url, SLOW)
    sources = [src("1", "CREATE INDEX CONCURRENTLY ON a (slow(id));", transactional=False)]
    _kill_while(
        database_url,
        "apply",
        sources,
        "CREATE INDEX",
        finish_first=lambda: len(_indexes(database_url)) == 1 and _indexes(database_url)[0][1],
    )
    engine = make_engine()
    with pytest.raises(NeedsRepair) as refused:
        engine.apply(sources)
    message = str(refused.value)
    assert (
        "migration 1: its last apply stopped while statement 1 (line 1, CREATE INDEX"
        " CONCURRENTLY) was running" in message
    )
    assert "run repair" in message and "nothing was run" in message
    assert engine.validate(sources).problems == (message,)
    assert "run repair" in (engine.status(sources)[0].resume or "")

    repaired = engine.repair(sources, completed=["1"])
    assert [(r.kind, r.statement_index) for r in repaired.results] == [("repair", 1)]
    report = engine.apply(sources)
    assert report.ok, report.failed
    assert len(_indexes(database_url)) == 1  # not built a second time


def test_repair_without_completed_runs_the_statement_again(
    make_engine: EngineFactory, database_url: str
) -> None:
    query(database_url, SLOW)
    sources = [src("1", "CREATE INDEX CONCURRENTLY ON a (slow(id));", transactional=False)]
    _kill_while(
        database_url,
        "apply",
        sources,
        "CREATE INDEX",
        finish_first=lambda: len(_indexes(database_url)) == 1 and _indexes(database_url)[0][1],
    )
    ((leftover, _),) = _indexes(database_url)
    query(database_url, f"DROP INDEX {leftover}")  # what the person found and undid
    engine = make_engine()
    assert [r.kind for r in engine.repair(sources).results] == ["repair"]
    assert engine.apply(sources).ok
    assert len(_indexes(database_url)) == 1


_LAYOUT_1_VIEW = """
DROP VIEW kubemigrate.version_state;
DROP TABLE kubemigrate.progress;
CREATE VIEW kubemigrate.version_state AS
WITH last_transition AS (
    SELECT DISTINCT ON (version_key) * FROM kubemigrate.history
    WHERE kind IN ('apply', 'baseline') OR (kind = 'rollback' AND status <> 'failed')
    ORDER BY version_key, id DESC
), last_accepted AS (
    SELECT DISTINCT ON (version_key) version_key, checksum, has_rollback
    FROM kubemigrate.history
    WHERE status = 'success' AND kind IN ('apply', 'baseline', 'repair')
    ORDER BY version_key, id DESC
)
SELECT t.version, t.version_key, t.description,
       CASE WHEN t.status = 'pending' THEN 'incomplete'
            WHEN t.kind = 'rollback' THEN 'rolled_back'
            WHEN t.status = 'success' THEN 'applied'
            ELSE 'failed' END AS state,
       CASE WHEN t.status = 'success' AND t.kind <> 'rollback'
            THEN coalesce(a.checksum, t.checksum) ELSE t.checksum END AS checksum,
       CASE WHEN t.status = 'success' AND t.kind <> 'rollback' THEN t.finished_at END
           AS applied_at,
       t.duration_ms,
       t.status = 'success' AND t.kind <> 'rollback' AND coalesce(a.has_rollback, false)
           AS rollback_available,
       t.sqlstate, t.error, t.kind AS last_kind, t.run_id AS last_run_id, t.id AS last_id
FROM last_transition t LEFT JOIN last_accepted a USING (version_key);
UPDATE kubemigrate.schema_info SET layout_version = 1;
"""
"""The history as kubemigrate's first layout had it (no progress table)."""


def test_an_incomplete_run_recorded_by_the_first_layout(
    engine: Migrator, database_url: str
) -> None:
    """An older kubemigrate left a pending row and no progress: the history is upgraded, and
    the migration runs again from statement 1, its index builds settled from the catalog."""
    query(database_url, "CREATE TABLE a (id int, name text)")
    done = src("1", "CREATE TABLE b (id int);")
    sources = [
        done,
        src(
            "2",
            "CREATE INDEX CONCURRENTLY a_name ON a (name);\n"
            "CREATE INDEX CONCURRENTLY a_id ON a (id);",
            transactional=False,
        ),
    ]
    assert engine.apply(sources).ok
    query(
        database_url,
        "DROP INDEX a_id; DELETE FROM kubemigrate.history WHERE version = '2'"
        " AND status = 'success';" + _LAYOUT_1_VIEW,
    )
    assert engine.apply(sources).ok
    assert query(database_url, "SELECT layout_version FROM kubemigrate.schema_info") == [(3,)]
    assert _indexes(database_url) == [("a_id", True), ("a_name", True)]
    assert _states(engine, sources) == ["applied", "applied"]


def test_the_cli_shows_what_a_stopped_run_left_and_settles_it_with_completed(
    database_url: str, tmp_path: Path
) -> None:
    """The same in-doubt statement, through the command line: status and validate say what the
    next run will do, and repair --completed records the statement as done."""
    sql = "-- kubemigrate: no-transaction\nCREATE INDEX CONCURRENTLY ON a (slow(id));\n"
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "1_index.up.sql").write_text(sql)
    query(database_url, SLOW)
    sources = [src("1", sql, transactional=False)]
    _kill_while(
        database_url,
        "apply",
        sources,
        "CREATE INDEX",
        finish_first=lambda: len(_indexes(database_url)) == 1 and _indexes(database_url)[0][1],
    )
    url = ["--database-url", database_url]
    status = run_cli("status", str(directory), *url)
    assert status.returncode == 0, status
    assert "1: " in status.stdout and "run repair" in status.stdout
    validate = run_cli("validate", str(directory), *url)
    assert validate.returncode == 2, validate
    assert "left midway: migration 1:" in validate.stderr
    repaired = run_cli("repair", str(directory), *url, "--completed", "1")
    assert repaired.returncode == 0, repaired
    assert "Settled 1: statement 1 recorded as done" in repaired.stdout
    applied = run_cli("apply", str(directory), *url)
    assert applied.returncode == 0, applied
    assert len(_indexes(database_url)) == 1  # not built a second time
