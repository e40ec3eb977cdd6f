"""A backup on disk: the dump (a file, or a directory for ``-Fd``) and its JSON sidecar.

The sidecar ``<dump>.meta.json`` records what a later verification or restore checks against:
sha256 and size of the dump, the server and database it came from, and the row count of every
table in the dump's snapshot. It never holds a password or a URL.

A dump is written under a temporary name and renamed into place only when complete, sidecar
first: whatever has the final name is a whole backup, and a failed run leaves nothing that looks
like one. A run killed outright (kill -9, the OOM killer) cannot remove its temporary files;
each is held under an exclusive ``flock`` while it is written, which the kernel drops with the
process, so the next backup of the same target removes those no live run holds
(``clear_stale``).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from kubemigrate.engine.errors import InvalidBackup

Format = Literal["custom", "plain", "directory"]
FORMATS: tuple[Format, ...] = ("custom", "plain", "directory")
PG_DUMP_FLAG: dict[Format, str] = {"custom": "c", "plain": "p", "directory": "d"}
SIDECAR_SUFFIX = ".meta.json"
SIDECAR_VERSION = 1
CUSTOM_MAGIC = b"PGDMP"
PLAIN_HEAD = "-- PostgreSQL database dump"
PLAIN_TAIL = "-- PostgreSQL database dump complete"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BackupMeta:
    """The sidecar's content. ``tables`` is None when row counts were not taken."""

    format: Format
    sha256: str
    size_bytes: int
    database: str
    server_version: str
    pg_dump_version: int
    created_at: datetime
    duration_seconds: float
    tables: dict[str, int] | None = field(default=None)
    version: int = SIDECAR_VERSION

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BackupMeta:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") not in FORMATS:
            raise ValueError("not a kubemigrate backup sidecar")
        tables = data.get("tables")
        return cls(
            format=data["format"],
            sha256=str(data["sha256"]),
            size_bytes=int(data["size_bytes"]),
            database=str(data.get("database", "")),
            server_version=str(data.get("server_version", "")),
            pg_dump_version=int(data.get("pg_dump_version", 0)),
            created_at=datetime.fromisoformat(data["created_at"]),
            duration_seconds=float(data.get("duration_seconds", 0.0)),
            tables=None if tables is None else {str(k): int(v) for k, v in tables.items()},
            version=int(data.get("version", SIDECAR_VERSION)),
        )


def sidecar_path(dump: Path) -> Path:
    """``backup.dump`` -> ``backup.dump.meta.json`` (a directory dump's sits beside it)."""
    return dump.with_name(dump.name + SIDECAR_SUFFIX)


def read_sidecar(dump: Path) -> BackupMeta | None:
    """The sidecar of dump, None if there is none; InvalidBackup if it is unreadable."""
    path = sidecar_path(dump)
    try:
        return BackupMeta.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidBackup(f"unreadable backup sidecar {path}: {exc}") from None


def detect_format(dump: Path) -> Format:
    """custom (starts PGDMP), directory (has toc.dat), else plain; InvalidBackup if absent."""
    if dump.is_dir():
        if (dump / "toc.dat").is_file():
            return "directory"
        raise InvalidBackup(f"{dump} is a directory without toc.dat: not a pg_dump directory")
    try:
        with dump.open("rb") as f:
            head = f.read(len(CUSTOM_MAGIC))
    except FileNotFoundError:
        raise InvalidBackup(f"backup {dump} does not exist") from None
    except OSError as exc:
        raise InvalidBackup(f"cannot read backup {dump}: {exc.strerror}") from None
    return "custom" if head == CUSTOM_MAGIC else "plain"


def digest(dump: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a dump file, or of a directory dump.

    A directory's digest is the sha256 of ``<sha256>  <name>`` lines (sha256sum's format) for its
    files in name order, so it changes when any file is changed, added or removed.
    """
    if not dump.is_dir():
        return _file_digest(dump)
    lines, total = [], 0
    for child in sorted(p for p in dump.iterdir() if p.is_file()):
        sha, size = _file_digest(child)
        lines.append(f"{sha}  {child.name}\n")
        total += size
    return hashlib.sha256("".join(lines).encode()).hexdigest(), total


def _file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


def plain_is_complete(dump: Path) -> bool:
    """Whether a plain dump has pg_dump's header and its closing ``dump complete`` line."""
    with dump.open("rb") as f:
        head = f.read(4096).decode("utf-8", "replace")
        f.seek(max(0, dump.stat().st_size - 4096))
        tail = f.read().decode("utf-8", "replace")
    return PLAIN_HEAD in head and PLAIN_TAIL in tail


def temporary_name(final: Path) -> Path:
    """A hidden name next to final, on the same filesystem, so the rename is atomic."""
    return final.with_name(f"{_PARTIAL.format(name=final.name)}{uuid.uuid4().hex[:8]}")


_PARTIAL = ".{name}.partial-"


@contextlib.contextmanager
def claimed(path: Path, *, directory: bool = False) -> Iterator[None]:
    """Create path (a new file, or an empty directory) and hold an exclusive lock on it for
    the block: the mark of a live writer, which ``clear_stale`` respects."""
    if directory:
        path.mkdir(mode=0o700)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def clear_stale(final: Path) -> list[Path]:
    """Remove the temporary files of backups to final (the dump's and its sidecar's) that no
    live run holds: those a killed run left. The ones removed."""
    removed = []
    for name in (final.name, sidecar_path(final).name):
        for path in final.parent.glob(glob_escape(_PARTIAL.format(name=name)) + "*"):
            if _unheld(path):
                remove(path)
                removed.append(path)
    return removed


def glob_escape(text: str) -> str:
    """text with glob's special characters matched literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _unheld(path: Path) -> bool:
    """Whether nobody holds path's lock (taking it for a moment to see)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@contextlib.contextmanager
def removing_on_failure(*paths: Path) -> Iterator[None]:
    """Remove paths (files or directories) if the block raises, including on Ctrl-C."""
    try:
        yield
    except BaseException:
        for path in paths:
            remove(path)
        raise


def delete_backup(dump: Path, *, on_removed: Callable[[Path], None] | None = None) -> list[Path]:
    """Remove a backup: the dump, its sidecar, and the hidden partial files of an interrupted run.

    Returns what was removed; none of it being there is not an error, so a cleanup can run twice.
    """
    sidecar = sidecar_path(dump)
    found = [p for p in (dump, sidecar) if p.exists() or p.is_symlink()]
    if dump.parent.is_dir():
        found += sorted(dump.parent.glob(f".{glob.escape(dump.name)}*.partial-*"))
    for victim in found:
        remove(victim)
        if on_removed is not None:
            on_removed(victim)
    return found


def delete_at(
    location: Path | str, *, on_removed: Callable[[str], None] | None = None
) -> tuple[str, list[str]]:
    """Delete the backup at a local path or an ``s3://`` location: (where, names removed)."""
    from kubemigrate.engine.backup import objstore  # noqa: PLC0415 - obstore only for s3://

    if objstore.is_remote(location):
        where = objstore.parse(str(location))
        keys = objstore.delete_backup(where)
        for key in keys:
            if on_removed is not None:
                on_removed(f"s3://{where.bucket}/{key}")
        return str(where), [key.rsplit("/", 1)[-1] for key in keys]
    path = Path(location).absolute()
    found = delete_backup(
        path, on_removed=None if on_removed is None else lambda p: on_removed(str(p))
    )
    return str(path), [p.name for p in found]


def remove(path: Path) -> None:
    """Remove a file or directory if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def fsync_tree(path: Path) -> None:
    """Flush a file, or every file of a directory and the directory, to stable storage."""
    targets = [p for p in path.iterdir() if p.is_file()] if path.is_dir() else [path]
    for target in targets:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.is_dir():
        fsync_dir(path)


def fsync_dir(path: Path) -> None:
    """Make renames and creations in directory path durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(temp_dump: Path, dump: Path, meta: BackupMeta) -> None:
    """Move a finished dump into place: sidecar first, then the dump, both atomic renames."""
    sidecar = sidecar_path(dump)
    temp_sidecar = temporary_name(sidecar)
    with removing_on_failure(temp_sidecar), claimed(temp_sidecar):
        temp_sidecar.write_text(meta.to_json(), encoding="utf-8")
        fsync_tree(temp_sidecar)
        fsync_tree(temp_dump)
        temp_sidecar.replace(sidecar)
    with removing_on_failure(sidecar):
        if temp_dump.is_dir():
            temp_dump.rename(dump)  # fails rather than merge into an existing directory
        else:
            temp_dump.replace(dump)
        fsync_dir(dump.parent)
