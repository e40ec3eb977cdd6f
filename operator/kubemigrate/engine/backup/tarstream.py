"""A directory dump as one object: a tar stream, packed and unpacked without a second copy.

One object (not one per file) keeps a backup atomic (it exists whole or not at all), gives it a
single sha256, and deletes with one request. The cost: restoring needs the whole directory
back on local disk before ``pg_restore -j`` can start, where one object per file could have
fetched files on demand. Packing runs in a thread that feeds a bounded queue, so memory holds a
few pieces, never a whole table's file.
"""

from __future__ import annotations

import io
import queue
import tarfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from kubemigrate.engine.errors import InvalidBackup

_PIECE = 1 << 20
_DONE = object()


class _QueueWriter(io.RawIOBase):
    """A write-only file whose writes go to a queue, in pieces of at most _PIECE bytes."""

    def __init__(self, out: queue.Queue[object]) -> None:
        self.out = out

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = bytes(data)
        for start in range(0, len(view), _PIECE):
            self.out.put(view[start : start + _PIECE])
        return len(view)


def pack(directory: Path) -> Iterator[bytes]:
    """The tar stream of directory's files (flat, as pg_dump writes them), in name order."""
    out: queue.Queue[object] = queue.Queue(maxsize=16)
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with tarfile.open(fileobj=_QueueWriter(out), mode="w|", format=tarfile.PAX_FORMAT) as t:
                for child in sorted(p for p in directory.iterdir() if p.is_file()):
                    t.add(child, arcname=child.name, recursive=False)
        except BaseException as exc:
            failed.append(exc)
        finally:
            out.put(_DONE)

    worker = threading.Thread(target=produce, daemon=True, name="kubemigrate-tar")
    worker.start()
    while (piece := out.get()) is not _DONE:
        assert isinstance(piece, bytes)
        yield piece
    worker.join()
    if failed:
        raise failed[0]


class _IterReader(io.RawIOBase):
    """A read-only file over an iterator of byte pieces."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._pieces)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def unpack(pieces: Iterable[bytes], directory: Path) -> None:
    """Extract a tar stream of plain files into directory (nothing outside it, no links)."""
    reader = io.BufferedReader(_IterReader(pieces), buffer_size=_PIECE)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as t:
            for member in t:
                if not member.isfile() or "/" in member.name or member.name.startswith("."):
                    raise InvalidBackup(f"unexpected entry {member.name!r} in a directory dump")
                t.extract(member, directory, filter="data")
    except tarfile.TarError as exc:
        raise InvalidBackup(f"not a directory dump's tar stream: {exc}") from None
