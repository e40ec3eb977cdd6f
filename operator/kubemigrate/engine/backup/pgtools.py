"""Running PostgreSQL's client programs: finding them, their versions, and one-line failures.

Their stderr can quote connection strings, so every message that leaves here is redacted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

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
