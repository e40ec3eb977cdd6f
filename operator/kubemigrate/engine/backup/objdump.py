"""A dump streamed into object storage: pg_dump's stdout -> sha256 -> multipart upload.

Nothing of the dump touches the local disk (custom and plain formats): pg_dump writes to a
pipe, each chunk is hashed and handed to obstore's writer, which uploads parts of ``PART_SIZE``
while pg_dump goes on. A custom archive written to a pipe has no data offsets in its table of
contents; a restore reads it front to back, which is all ``--single-transaction`` can do anyway.
A directory dump (``-Fd``, the one ``--jobs`` needs) cannot be streamed: pg_dump writes it
into a local staging directory, then it is streamed up as one tar object (see ``tarstream``).

The object becomes visible only when the multipart upload completes; any failure in the block,
including SIGTERM (the CLI turns it into KeyboardInterrupt), aborts the upload, so no parts are
left. A process killed outright (kill -9, the OOM killer) cannot abort: its parts stay until a
bucket lifecycle rule (``AbortIncompleteMultipartUpload``) removes them; docs/backups.md shows one.
The sidecar is written after the dump: an object without its sidecar is an unfinished backup,
and restore and verify refuse it.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import obstore

from kubemigrate.engine.backup import objstore, pgtools, tarstream
from kubemigrate.engine.backup.objstore import ObjectLocation
from kubemigrate.engine.errors import BackupError, ToolFailed

_READ = 1 << 20


@dataclass(frozen=True)
class Uploaded:
    sha256: str
    size_bytes: int


def check_free(where: ObjectLocation, overwrite: bool) -> None:
    """Refuse to replace an existing backup unless asked (checked before pg_dump starts)."""
    store = objstore.open_store(where.bucket)
    if not overwrite and objstore.size_of(store, where) is not None:
        raise BackupError(f"{where} already exists; choose another name or overwrite it")


def upload(where: ObjectLocation, pieces: Iterable[bytes]) -> Uploaded:
    """Upload pieces as where's object in parts, hashing as they go; aborted on any failure."""
    store = objstore.open_store(where.bucket)
    h, size = hashlib.sha256(), 0
    with (
        objstore.translated(where, "writing"),
        obstore.open_writer(
            store,
            where.key,
            buffer_size=objstore.PART_SIZE,
            max_concurrency=objstore.CONCURRENCY,
        ) as writer,
    ):
        for piece in pieces:
            h.update(piece)
            size += len(piece)
            writer.write(piece)
    return Uploaded(h.hexdigest(), size)


def stream_dump(
    args: list[str],
    *,
    env: dict[str, str],
    secrets: tuple[str, ...] | list[str],
    where: ObjectLocation,
    count: Callable[[], dict[str, int] | None],
    cancel: Callable[[], None],
) -> tuple[Uploaded, dict[str, int] | None]:
    """Run pg_dump (args write to stdout) into where's object while count runs in a thread;
    on failure cancel stops the counting query, so an interrupted run ends at once."""
    counted = _Background(count)
    with tempfile.TemporaryFile("w+") as stderr:
        proc = pgtools.popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        assert proc.stdout is not None
        try:
            counted.start()
            done = upload(where, _checked(proc, proc.stdout, stderr, secrets, counted))
        except BaseException:
            proc.kill()
            proc.wait()
            cancel()
            counted.join()
            raise
    return done, counted.value


def upload_directory(where: ObjectLocation, directory: Path) -> Uploaded:
    """A directory dump, as one tar object (see ``tarstream``)."""
    return upload(where, tarstream.pack(directory))


def _checked(
    proc: subprocess.Popen[Any],
    stdout: IO[bytes],
    stderr: IO[str],
    secrets: tuple[str, ...] | list[str],
    counted: _Background,
) -> Iterable[bytes]:
    """pg_dump's output; raising (so the upload aborts) if pg_dump or the counting failed."""
    while piece := stdout.read(_READ):
        yield piece
    returncode = proc.wait()
    if returncode != 0:
        stderr.seek(0)
        raise ToolFailed(
            "pg_dump failed: " + pgtools.error_line(stderr.read(), "pg_dump", secrets=secrets)
        )
    counted.join()
    if counted.error is not None:
        raise counted.error


class _Background(threading.Thread):
    """Row counting alongside the dump: its result or its exception, for the main thread."""

    def __init__(self, work: Callable[[], dict[str, int] | None]) -> None:
        super().__init__(daemon=True, name="kubemigrate-rowcounts")
        self._work = work
        self.value: dict[str, int] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self._work()
        except BaseException as exc:  # handed to the main thread
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        if self.is_alive() or self.ident is not None:
            super().join(timeout)
