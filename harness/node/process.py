"""One run of a container's sandbox as a host process: start it with its output appended to the
pod's log, stop it as the kubelet stops containers (SIGTERM to the pod's processes, SIGKILL after
the grace period), and read how it ended: exit code, termination message, start failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness.node import status as pod_status
from harness.node.launch import Launch

LOG_TAIL_LINES, LOG_TAIL_BYTES = 80, 2048  # FallbackToLogsOnError, as the kubelet


def exit_code(returncode: int) -> int:
    """A container runtime's exit code: 128 + N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def signal_sandbox(leader: int, sig: int) -> None:
    """Signal the pod's processes (bwrap's process group) but not the outer bwrap, so that it
    stays to report the exit status; with nothing else left, kill the whole group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:
            members.append(int(entry.name))
    targets = members if members and sig != signal.SIGKILL else []
    for pid in targets:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
    if not targets:
        with contextlib.suppress(OSError):
            os.killpg(leader, sig)


class Run:
    """A started container process."""

    def __init__(self, launch: Launch, logfile: Path) -> None:
        self.launch, self.logfile = launch, logfile
        logfile.parent.mkdir(parents=True, exist_ok=True)
        launch.termination.parent.mkdir(parents=True, exist_ok=True)
        launch.termination.write_bytes(b"")
        launch.termination.chmod(0o666)  # any uid may write it, as the kubelet makes it
        self.offset = logfile.stat().st_size if logfile.exists() else 0
        self.started = pod_status.now()
        read_fd, write_fd = os.pipe() if launch.reports else (-1, -1)
        self._report = read_fd
        passed = [fd for fd in (write_fd,) if fd >= 0]
        try:
            args_fd = os.memfd_create("bwrap-args") if launch.hides_args else -1
            if args_fd >= 0:
                passed.append(args_fd)
            argv, options = launch.argv(write_fd, args_fd)
            if args_fd >= 0:
                os.write(args_fd, options)
                os.lseek(args_fd, 0, os.SEEK_SET)
            with logfile.open("ab") as out:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=launch.env,
                    cwd="/",
                    start_new_session=True,
                    pass_fds=passed,
                )
        except BaseException:
            self.cleanup()
            raise
        finally:
            for fd in passed:
                os.close(fd)
        self.pid = self.proc.pid

    def wait(self, stopping: Callable[[], bool], grace: Callable[[], float]) -> int:
        """The exit code; once stopping() is true, SIGTERM, then SIGKILL after grace()."""
        kill_at: float | None = None
        while True:
            try:
                return exit_code(self.proc.wait(timeout=0.2))
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if kill_at is None:
                if stopping():
                    signal_sandbox(self.pid, signal.SIGTERM)
                    kill_at = now + grace()
            elif now >= kill_at:
                signal_sandbox(self.pid, signal.SIGKILL)
                kill_at = now + 3600

    def start_error(self) -> str:
        """Why runas could not start the command ("" if it did), once the run is over."""
        if self._report < 0:
            return ""
        os.set_blocking(self._report, False)  # a leftover writer must not hang the worker
        with os.fdopen(self._report, "rb") as report:
            self._report = -1
            try:
                return (report.read(pod_status.MAX_MESSAGE) or b"").decode(errors="replace")
            except BlockingIOError:
                return ""

    def termination_message(self, code: int, policy: str | None) -> str:
        try:
            with self.launch.termination.open("rb") as f:
                message = f.read(pod_status.MAX_MESSAGE).decode(errors="replace")
        except OSError:
            message = ""
        if not message and code != 0 and policy == "FallbackToLogsOnError":
            with self.logfile.open("rb") as f:
                f.seek(self.offset)
                lines = f.read().splitlines(keepends=True)[-LOG_TAIL_LINES:]
            message = b"".join(lines)[-LOG_TAIL_BYTES:].decode(errors="replace")
        return message

    def cleanup(self) -> None:
        """Drop the run's writable layer (its overlay went with its mount namespace)."""
        if self._report >= 0:
            os.close(self._report)
            self._report = -1
        if self.launch.layer is not None:
            shutil.rmtree(self.launch.layer, ignore_errors=True)
