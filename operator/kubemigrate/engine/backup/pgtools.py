"""Running PostgreSQL's client programs: finding them, their versions, and one-line failures.

Their stderr can quote connection strings, so every message that leaves here is redacted.

A child dies with its parent: on Linux each is started with a parent-death signal (SIGKILL,
``prctl(PR_SET_PDEATHSIG)`` between fork and exec), so a ``kubemigrate backup`` or ``restore``
killed with kill -9 (or by the OOM killer) does not leave pg_dump or pg_restore running on its
own, writing a file nobody will publish or holding the restore target. The signal follows the
thread that started the child: the CLI starts them from its main thread.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubemigrate.engine.errors import ToolFailed, ToolMissing
from kubemigrate.engine.pg.redact import redact

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_MAX_MESSAGE = 600


def locate(program: str) -> str:
    """The executable for program (a name on PATH or a path), or ToolMissing."""
    found = shutil.which(program)
    if found is None:
        raise ToolMissing(
            f"{program} not found: install the PostgreSQL client programs "
            "(postgresql-client) or give their path"
        )
    return found


def major_version(program: str) -> int:
    """The major version of a client program, from ``program --version``."""
    done = subprocess.run(
        [locate(program), "--version"], capture_output=True, text=True, check=False
    )
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise ToolMissing(
            f"{program} --version did not report a PostgreSQL version: "
            f"{(done.stdout + done.stderr).strip()[:200]!r}"
        )
    return int(match.group(1))


def server_major(server_version_num: int) -> int:
    """15 for 150018, 9 for 90624 (9.6 and older are not supported anyway)."""
    return server_version_num // 10000


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child killed when this process dies (Linux); None
    elsewhere. libc is looked up here, in the parent: the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: no signal will come
            os._exit(1)

    return preexec


def popen(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` of a client program that dies with this process."""
    preexec = die_with_parent()
    return subprocess.Popen(list(args), preexec_fn=preexec, **kwargs)  # noqa: PLW1509


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
    what: str,
) -> subprocess.CompletedProcess[str]:
    """Run a client program to completion; ToolFailed with its first error line if it fails."""
    done = subprocess.run(
        list(args),
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        preexec_fn=die_with_parent(),
    )
    if done.returncode != 0:
        raise ToolFailed(
            f"{what} failed: " + error_line(done.stderr, Path(args[0]).name, secrets=secrets)
        )
    return done


def error_line(stderr: str, program: str, *, secrets: Sequence[str] = ()) -> str:
    """The one line that says why a client program failed, redacted and shortened.

    pg_dump and friends print ``prog: error: <why>`` and sometimes ``prog: detail: ...`` or
    ``Command was: ...``; the error and the first following detail are what a person needs.
    """
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    prefix = f"{program}: "
    picked: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith((f"{prefix}error:", "psql:")) or " ERROR: " in f" {line}":
            picked.append(_strip(line, prefix))
            following = lines[index + 1 : index + 3]
            picked.extend(
                _strip(f, prefix)
                for f in following
                if f.startswith((f"{prefix}detail:", "Command was:", "DETAIL:"))
            )
            break
    if not picked:
        picked = [_strip(lines[-1], prefix)] if lines else [f"{program} exited with an error"]
    text = redact(" ".join(" ".join(picked).split()), *secrets)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _strip(line: str, prefix: str) -> str:
    line = line.removeprefix(prefix)
    return line.removeprefix("error: ")
