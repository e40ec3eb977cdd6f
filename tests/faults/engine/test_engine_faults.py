"""The engine's fault suite: ``kill -9`` of ``kubemigrate apply`` and ``rollback`` at random
points, over migrations of every kind (one at a time, batched, no-transaction), each kill
followed by a plain re-run that must finish with no manual step and leave the schema, the data
and the history's state exactly as an uninterrupted run does.

Short by default (3 kills of each, for ``make test``); ``KUBEMIGRATE_FAULT_KILLS=20`` runs the
full suite (``make faults-engine``). ``KUBEMIGRATE_FAULT_SEED`` repeats a run's kill points;
``KUBEMIGRATE_FAULT_REPORT=<file>`` writes every kill's figures as JSON.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from faults.engine.fault_migrations import MIGRATIONS, write
from harness import databases
from integration.cli.cli_helpers import run_cli, start_cli

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

KILLS = int(os.environ.get("KUBEMIGRATE_FAULT_KILLS", "3"))
SEED = int(os.environ.get("KUBEMIGRATE_FAULT_SEED", str(time.time_ns() % 1_000_000)))
REPORT = os.environ.get("KUBEMIGRATE_FAULT_REPORT")


@dataclass(frozen=True)
class Kill:
    """One kill and its re-run, as the report records them."""

    command: str
    after_seconds: float
    landed: str
    in_doubt: bool
    lock_free_seconds: float
    rerun_seconds: float
    problem: str | None = None
    """Why the re-run does not count: it failed, or left something else than an
    uninterrupted run."""


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


_SCHEMA = """
SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text,
       pg_get_userbyid(c.relowner)::text,
       coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                   || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                                   ', ' ORDER BY a.attnum)
                 FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), ''),
       coalesce((SELECT pg_get_indexdef(i.indexrelid)
                        || CASE WHEN i.indisvalid AND i.indisready THEN '' ELSE ' INVALID' END
                 FROM pg_index i WHERE i.indexrelid = c.oid), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'kubemigrate')
  AND n.nspname NOT LIKE 'pg\\_%' AND c.relkind IN ('r', 'i', 'v', 'S')
ORDER BY 1
"""

_HISTORY = """
SELECT version, state, checksum, rollback_available,
       (SELECT count(*) FROM kubemigrate.history h
        WHERE h.version_key = s.version_key AND h.kind = 'apply' AND h.status = 'success'),
       (SELECT count(*) FROM kubemigrate.history h
        WHERE h.version_key = s.version_key AND h.kind = 'rollback' AND h.status = 'success')
FROM kubemigrate.version_state s ORDER BY version_key
"""


def fingerprint(url: str) -> dict[str, Any]:
    """What must be the same as after an uninterrupted run: every relation (columns, owner,
    index definitions and validity), functions, the rows the migrations wrote, each version's
    state with how many times it was applied and rolled back, and nothing left in progress."""
    data: dict[str, Any] = {}
    for table in ("accounts", "events"):
        if query(url, "SELECT to_regclass(%s) IS NOT NULL", [table]) == [(True,)]:
            data[table] = query(url, f"SELECT count(*) FROM {table}")
    columns = query(
        url,
        "SELECT attname::text FROM pg_attribute WHERE attrelid ="
        " to_regclass('accounts') AND attname = 'score' AND NOT attisdropped",
    )
    if columns:
        data["score"] = query(url, "SELECT sum(score) FROM accounts")
    return {
        "schema": query(url, _SCHEMA),
        "functions": query(
            url,
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN"
            " pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' ORDER BY 1",
        ),
        "data": data,
        "history": query(url, _HISTORY),
        "progress": query(url, "SELECT count(*) FROM kubemigrate.progress")
        if query(url, "SELECT to_regclass('kubemigrate.progress')") != [(None,)]
        else [(0,)],
        "advisory_locks": query(
            url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database"
            " WHERE datname = current_database())",
        ),
    }


def _cli(command: str, directory: Path, url: str) -> list[str]:
    args = [command, str(directory), "--database-url", url, "--lock-wait", "60"]
    return args + (["--target", "0"] if command == "rollback" else [])


def _run(command: str, directory: Path, url: str) -> tuple[float, str | None]:
    """Run command to the end: how long it took, and its failure if it failed."""
    started = time.monotonic()
    done = run_cli(*_cli(command, directory, url), timeout=300)
    problem = None if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()}"
    return time.monotonic() - started, problem


def _run_ok(command: str, directory: Path, url: str) -> float:
    took, problem = _run(command, directory, url)
    assert problem is None, problem
    return took


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
    return time.monotonic() - started


def _gone(url: str) -> bool:
    """No backend of a kubemigrate run, and no advisory lock, is left in the database."""
    return query(
        url,
        "SELECT (SELECT count(*) FROM pg_stat_activity"
        "        WHERE datname = current_database()"
        "          AND application_name = 'kubemigrate')"
        "     + (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        "        AND database = (SELECT oid FROM pg_database"
        "                        WHERE datname = current_database()))",
    ) == [(0,)]


def _kill_after(command: str, directory: Path, url: str, seconds: float) -> tuple[bool, float]:
    """Start ``kubemigrate COMMAND``, kill -9 it after ``seconds``; whether it was still
    running, and how long its backends and lock took to go after the kill."""
    process = start_cli(*_cli(command, directory, url))
    try:
        time.sleep(seconds)
        running = process.poll() is None
        if running:  # not reaped yet: the pid is still this process's
            os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.communicate(timeout=60)
    return running, _wait_for(lambda: _gone(url))


def _landed(url: str, command: str, running: bool) -> tuple[str, bool]:
    """Where the kill left the run, in words, and whether a statement was in doubt."""
    if not running:
        return "after the run had finished", False
    if query(url, "SELECT to_regclass('kubemigrate.version_state')") == [(None,)]:
        return "before the history existed", False
    state = "rolled_back" if command == "rollback" else "applied"
    done = query(url, "SELECT count(*) FROM kubemigrate.version_state WHERE state = %s", [state])[
        0
    ][0]
    if query(url, "SELECT to_regclass('kubemigrate.progress')") == [(None,)]:
        unfinished = [
            (v, None, None, None)
            for (v,) in query(  # an engine without progress
                url, "SELECT version FROM kubemigrate.version_state WHERE state = 'incomplete'"
            )
        ]
    else:
        unfinished = query(
            url,
            "SELECT s.version, p.done, p.statements, p.running"
            " FROM kubemigrate.version_state s LEFT JOIN kubemigrate.progress"
            " p USING (version_key) WHERE s.state = 'incomplete'",
        )
    words = f"{done} of {len(MIGRATIONS)} {state.replace('_', ' ')}"
    in_doubt = False
    for version, statements_done, total, doubt in unfinished:
        words += f"; {version} incomplete"
        if total is not None:
            words += f" after {statements_done} of {total} statements"
        if doubt is not None:
            words += f", statement {doubt} in doubt"
            in_doubt = True
    return words, in_doubt


@pytest.fixture
def fresh(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        made.append(databases.create(pg_admin_url, prefix="faults"))
        return made[-1]

    yield make
    for url in made:
        databases.drop(pg_admin_url, url)


def _suite(command: str, directory: Path, fresh: Callable[[], str]) -> list[Kill]:
    """Kill command KILLS times at random points; each time, re-run it and compare."""
    reference_url = fresh()
    if command == "rollback":
        _run_ok("apply", directory, reference_url)
    duration = _run_ok(command, directory, reference_url)
    reference = fingerprint(reference_url)
    # A run with nothing to do: start-up, connecting, the lock, reading the history. Kills are
    # drawn from half of it to the end, so that most land in the migrations themselves.
    idle = _run_ok(command, directory, reference_url)
    rng = random.Random(f"{SEED}-{command}")
    kills = []
    for _ in range(KILLS):
        url = fresh()
        if command == "rollback":
            _run_ok("apply", directory, url)
        after = rng.uniform(idle / 2, max(duration, idle))
        running, lock_free = _kill_after(command, directory, url, after)
        landed, in_doubt = _landed(url, command, running)
        rerun, problem = _run(command, directory, url)
        if problem is None and fingerprint(url) != reference:
            problem = "the re-run left another schema, data or history than an uninterrupted run"
        kills.append(
            Kill(
                command,
                round(after, 3),
                landed,
                in_doubt,
                round(lock_free, 3),
                round(rerun, 3),
                problem,
            )
        )
    return kills


def _report(kills: list[Kill]) -> None:
    lock_free = [k.lock_free_seconds for k in kills]
    failed = [k for k in kills if k.problem is not None]
    print(
        f"\n{kills[0].command}: {len(kills)} kills (seed {SEED}), {len(failed)} re-runs that"
        f" failed or differ from an uninterrupted run; lock free after median"
        f" {statistics.median(lock_free):.2f} s, max {max(lock_free):.2f} s;"
        f" {sum(k.in_doubt for k in kills)} with a statement in doubt"
    )
    for kill in kills:
        print(
            f"  {kill.after_seconds:6.2f} s  {kill.landed}"
            + (f"  -> {kill.problem}" if kill.problem else "")
        )
    if REPORT:
        path = Path(REPORT)
        existing = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(existing + [asdict(k) for k in kills], indent=1))


@pytest.mark.parametrize("command", ["apply", "rollback"])
def test_kill_9_at_random_points_then_a_plain_rerun(
    command: str, tmp_path: Path, fresh: Callable[[], str]
) -> None:
    kills = _suite(command, write(tmp_path / "migrations"), fresh)
    _report(kills)
    assert len(kills) == KILLS
    assert [k for k in kills if k.problem is not None] == []
