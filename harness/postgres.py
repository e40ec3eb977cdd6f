"""A PostgreSQL server of the harness' own, in a directory it owns, run as the `postgres` user.

initdb refuses to run as root, and these machines run as root, so the data directory is owned by
`postgres` and the server binaries run through runuser. The server listens on loopback only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.paths import PG_BIN
from harness.ports import free_port, is_listening

PASSWORD_ROLE = "kubemigrate_pw"
"""The one role that must log in with a password (scram-sha-256); everyone else is trusted on
loopback. Tests of wrong passwords use it."""

HBA = f"""# Written by the kubemigrate test harness.
local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
"""


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its data directory, port and superuser URL."""

    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


def _as_postgres(args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(cmd, check=True, text=True, capture_output=True)


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def running(datadir: Path) -> PostgresServer | None:
    """The server in datadir, if its postmaster is up and accepting connections."""
    pidfile = datadir / "postmaster.pid"
    if not pidfile.exists():
        return None
    lines = pidfile.read_text().splitlines()
    if len(lines) < 4:
        return None
    pid, port = int(lines[0]), int(lines[3])
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return PostgresServer(datadir, port) if is_listening(port) else None


def start(datadir: Path, *, port: int | None = None, fsync: bool = False) -> PostgresServer:
    """Start (initialising if needed) the server in datadir; reuse it if already running."""
    existing = running(datadir)
    if existing:
        hba = datadir / "pg_hba.conf"
        if hba.read_text() != HBA:  # a server started by an older harness
            hba.write_text(HBA)
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(datadir), "reload"])
        return existing
    datadir.mkdir(parents=True, exist_ok=True)
    # The parent must be traversable by postgres.
    for parent in [datadir.parent, *datadir.parent.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    _chown_postgres(datadir)
    datadir.chmod(0o700)
    if not (datadir / "PG_VERSION").exists():
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
            ]
        )
    hba = datadir / "pg_hba.conf"
    if hba.read_text() != HBA:
        hba.write_text(HBA)
    port = port or free_port()
    opts = (
        f"-k {datadir} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=200 "
        f"-c fsync={'on' if fsync else 'off'} -c full_page_writes={'on' if fsync else 'off'} "
        f"-c synchronous_commit={'on' if fsync else 'off'}"
    )
    log = datadir / "server.log"
    _as_postgres(
        [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(datadir),
            "-l",
            str(log),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        server = running(datadir)
        if server:
            return server
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL in {datadir} did not start; see {log}")


def stop(datadir: Path) -> None:
    """Stop the server in datadir, if any (fast shutdown: clients are disconnected)."""
    if not (datadir / "postmaster.pid").exists():
        return
    subprocess.run(
        (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
        + [str(PG_BIN / "pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop"],
        check=False,
        capture_output=True,
    )


def crash(datadir: Path) -> None:
    """Stop the server in datadir as a crash would (immediate shutdown: no checkpoint, and
    WAL still in its buffers is lost); the next start recovers from the WAL on disk."""
    subprocess.run(
        (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
        + [str(PG_BIN / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"],
        check=True,
        capture_output=True,
    )
