"""Daemons with pid and log files, so `make dev-up` can return and `dev-down` can stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Daemons this process started, kept so they are reaped (no zombies) and never garbage-collected
# while running (Popen warns then, and the tests turn warnings into errors).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def alive(pid: int) -> bool:
    """Whether pid is a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(pidfile: Path) -> int | None:
    """The pid recorded in pidfile if that process still lives."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def spawn(
    name: str,
    argv: Sequence[str],
    state_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv detached from this session, logging to state_dir/logs/NAME.log."""
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    _CHILDREN[proc.pid] = proc
    (state_dir / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def stop(name: str, state_dir: Path, *, grace: float = 10.0) -> None:
    """SIGTERM the named daemon's process group, then SIGKILL after grace seconds."""
    pidfile = state_dir / f"{name}.pid"
    pid = read_pid(pidfile)
    if pid is not None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except OSError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.1)
            if not alive(pid):
                break
    _reap(pidfile, grace)
    pidfile.unlink(missing_ok=True)


def _reap(pidfile: Path, grace: float) -> None:
    """Collect the exit status of a daemon this process started, dead or just killed."""
    try:
        child = _CHILDREN.pop(int(pidfile.read_text().strip()), None)
    except (OSError, ValueError):
        return
    if child is not None:
        child.wait(timeout=grace)
