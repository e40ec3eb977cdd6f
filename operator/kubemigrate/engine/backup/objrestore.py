"""Reading a backup back from object storage: checked against its sidecar, never trusted.

A remote backup must have its sidecar (it is written last: without it the backup never
finished). Its size is checked before anything runs. A custom or plain dump is streamed into
pg_restore's (or psql's) standard input while its sha256 is computed; the last piece is held
back until the whole object's sha256 matches the sidecar's. Without that piece the restore
cannot reach its end, and it runs as one transaction, so a corrupted object is refused with
the target unchanged, and no copy of the dump is ever on local disk. A directory dump (a tar
object, see ``tarstream``) is unpacked into a local staging directory and checked before
pg_restore starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubemigrate.engine.backup import objstore, pgtools, tarstream
from kubemigrate.engine.backup.dumpfile import PLAIN_HEAD, PLAIN_TAIL, BackupMeta, Format
from kubemigrate.engine.backup.objstore import ObjectLocation
from kubemigrate.engine.errors import InvalidBackup, ToolFailed


def check(where: ObjectLocation) -> tuple[Format, BackupMeta]:
    """The backup's format and sidecar, after checking the object's size against it."""
    store = objstore.open_store(where.bucket)
    text = objstore.read_text(store, where, where.sidecar_key)
    size = objstore.size_of(store, where)
    if size is None:
        raise InvalidBackup(f"backup {where} does not exist")
    if text is None:
        raise InvalidBackup(
            f"{where} has no sidecar ({where.name}{objstore.SIDECAR_SUFFIX}): the backup did "
            "not finish, or is not a kubemigrate backup"
        )
    try:
        meta = BackupMeta.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidBackup(f"unreadable backup sidecar of {where}: {exc}") from None
    if size != meta.size_bytes:
        raise InvalidBackup(
            f"{where} has {size} bytes but was written with {meta.size_bytes}: "
            "truncated or changed since the backup"
        )
    return meta.format, meta


def mismatch(where: ObjectLocation) -> InvalidBackup:
    return InvalidBackup(
        f"{where} does not match its recorded sha256 (corrupted or changed since the backup); "
        "nothing was restored"
    )


@dataclass
class _Digest:
    """sha256 and the first and last bytes of a stream, as it passes."""

    sha: hashlib._Hash
    head: bytes = b""
    tail: bytes = b""

    def see(self, piece: bytes) -> None:
        self.sha.update(piece)
        if len(self.head) < 4096:
            self.head += piece[: 4096 - len(self.head)]
        self.tail = (self.tail + piece)[-4096:]


def _pieces(where: ObjectLocation, meta: BackupMeta, digest: _Digest) -> Iterator[bytes]:
    store = objstore.open_store(where.bucket)
    for piece in objstore.chunks(store, where, meta.size_bytes):
        digest.see(piece)
        yield piece


def feed(
    where: ObjectLocation,
    meta: BackupMeta,
    args: list[str],
    *,
    env: dict[str, str] | None,
    secrets: tuple[str, ...] | list[str],
    what: str,
) -> None:
    """Run args (a program reading the dump on stdin) on the object; the last piece only once
    the sha256 matched (see the module docstring)."""
    digest = _Digest(hashlib.sha256())
    with tempfile.TemporaryFile("w+") as stderr:
        proc = pgtools.popen(
            args, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr
        )
        assert proc.stdin is not None
        try:
            _send(proc.stdin, _pieces(where, meta, digest), digest, meta, where)
        except BrokenPipeError:
            pass  # the program stopped reading: its exit status says why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.wait() != 0:
            stderr.seek(0)
            raise ToolFailed(
                f"{what} failed: "
                + pgtools.error_line(stderr.read(), Path(args[0]).name, secrets=secrets)
            )


def _send(
    stdin: object, pieces: Iterable[bytes], digest: _Digest, meta: BackupMeta, where: ObjectLocation
) -> None:
    write = stdin.write  # type: ignore[attr-defined]
    held: bytes | None = None
    for piece in pieces:
        if held is not None:
            write(held)
        held = piece
    if digest.sha.hexdigest() != meta.sha256:
        raise mismatch(where)
    if held is not None:
        write(held)
    stdin.close()  # type: ignore[attr-defined]


def fetch_directory(where: ObjectLocation, meta: BackupMeta, directory: Path) -> None:
    """Unpack a directory dump's tar object into directory, checking its sha256."""
    digest = _Digest(hashlib.sha256())
    tarstream.unpack(_pieces(where, meta, digest), directory)
    if digest.sha.hexdigest() != meta.sha256:
        raise mismatch(where)


def scan(where: ObjectLocation, meta: BackupMeta, pg_restore: str) -> tuple[int | None, bool]:
    """Read the whole object: (table-of-contents entries from ``pg_restore --list`` for an
    archive, else None; whether a plain script has pg_dump's first and closing lines).
    InvalidBackup if the sha256 differs; ToolFailed if pg_restore cannot read the archive."""
    digest = _Digest(hashlib.sha256())
    if meta.format == "directory":
        with tempfile.TemporaryDirectory(prefix="kubemigrate-verify-") as staging:
            fetch_directory(where, meta, Path(staging))
            return _entries(pgtools.locate(pg_restore), ["--list", staging]), True
    if meta.format == "plain":
        for _ in _pieces(where, meta, digest):
            pass
        if digest.sha.hexdigest() != meta.sha256:
            raise mismatch(where)
        head, tail = digest.head.decode("utf-8", "replace"), digest.tail.decode("utf-8", "replace")
        return None, PLAIN_HEAD in head and PLAIN_TAIL in tail
    program = pgtools.locate(pg_restore)
    with tempfile.TemporaryFile("w+") as listing, tempfile.TemporaryFile("w+") as stderr:
        proc = pgtools.popen(
            [program, "--list"], stdin=subprocess.PIPE, stdout=listing, stderr=stderr
        )
        assert proc.stdin is not None
        sink, reading = proc.stdin, True
        for piece in _pieces(where, meta, digest):
            if reading:
                try:
                    sink.write(piece)
                except BrokenPipeError:
                    reading = False  # it read the table of contents and stopped: keep hashing
        with contextlib.suppress(BrokenPipeError):
            sink.close()
        returncode = proc.wait()
        if digest.sha.hexdigest() != meta.sha256:
            raise mismatch(where)
        if returncode != 0:
            stderr.seek(0)
            raise ToolFailed(
                "pg_restore --list failed: " + pgtools.error_line(stderr.read(), "pg_restore")
            )
        listing.seek(0)
        return _count(listing.read()), True


def _entries(program: str, args: list[str]) -> int:
    return _count(pgtools.run([program, *args], what="pg_restore --list").stdout)


def _count(listing: str) -> int:
    return sum(1 for line in listing.splitlines() if line.strip() and not line.startswith(";"))
