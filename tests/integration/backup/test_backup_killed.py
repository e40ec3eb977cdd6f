"""A backup or restore killed with kill -9: its pg_dump / pg_restore dies with it, and the
next backup of the same target clears the partial files the killed one left."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from integration.backup.backup_helpers import query
from integration.cli.cli_helpers import run_cli, start_cli


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _children(pid: int, name: str) -> list[int]:
    """Processes named name whose parent is pid, connected to a database (not a
    ``--version`` check)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        connected = any(arg.startswith(b"--dbname=") for arg in argv)
        if comm == name and int(rest.split()[1]) == pid and connected:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def big_url(database_url: str) -> str:
    """A database whose dump takes a few seconds."""
    query(
        database_url,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((-g)::text)"
        " AS payload FROM generate_series(1, 1500000) g",
    )
    return database_url


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids to kill after the test, whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _kill_while_child_runs(
    args: list[str], child: str, partial_in: Path | None, leftovers: list[int]
) -> int:
    """Start ``kubemigrate ARGS``, kill -9 it once its child program runs (and, with
    ``partial_in``, has written part of its output there); the child's pid."""
    cli = start_cli(*args)
    leftovers.append(cli.pid)
    _wait_for(lambda: bool(_children(cli.pid, child)))
    (pid,) = _children(cli.pid, child)
    leftovers.append(pid)
    if partial_in is not None:
        _wait_for(
            lambda: any(
                p.stat().st_size > 1_000_000 for p in partial_in.glob(".*.partial-*") if p.is_file()
            )
        )
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait(10)
    assert cli.stdout is not None and cli.stderr is not None
    cli.stdout.close()
    cli.stderr.close()
    return pid


def test_a_killed_backup_takes_pg_dump_with_it_and_the_next_run_clears_its_partial_files(
    big_url: str, tmp_path: Path, leftovers: list[int]
) -> None:
    out = tmp_path / "backups" / "app.dump"
    args = ["backup", "--database-url", big_url, "--output", str(out), "--overwrite"]
    first = run_cli(*args, "--no-row-counts")
    assert first.returncode == 0, first
    dump = _kill_while_child_runs(args, "pg_dump", out.parent, leftovers)
    _wait_for(lambda: not _alive(dump), timeout=2)
    _wait_for(
        lambda: (
            query(
                big_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'"
            )
            == [(0,)]
        ),
        5,
    )
    assert list(out.parent.glob(".*.partial-*")), "the kill left the partial dump"

    again = run_cli(*args)
    assert again.returncode == 0, again
    assert sorted(p.name for p in out.parent.iterdir()) == ["app.dump", "app.dump.meta.json"]


def test_a_killed_restore_takes_pg_restore_with_it(
    big_url: str, tmp_path: Path, new_database: Callable[[], str], leftovers: list[int]
) -> None:
    out = tmp_path / "app.dump"
    assert run_cli("backup", "--database-url", big_url, "--output", str(out)).returncode == 0
    target = new_database()
    restore = _kill_while_child_runs(
        ["restore", str(out), "--database-url", target], "pg_restore", None, leftovers
    )
    _wait_for(lambda: not _alive(restore), timeout=2)
    _wait_for(
        lambda: (
            query(
                target,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_restore'",
            )
            == [(0,)]
        ),
        5,
    )
    again = run_cli("restore", str(out), "--database-url", target)
    assert again.returncode == 0, again
    assert query(target, "SELECT count(*) FROM big") == [(1500000,)]
