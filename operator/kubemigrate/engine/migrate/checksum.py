"""The checksum that detects drift: an applied migration whose SQL has since changed.

``sha256:<hex>`` of the forward SQL encoded as UTF-8, after turning CRLF line ends into LF, so
a checkout with Windows line endings (git's ``core.autocrlf``) does not read as drift while any
other change, whitespace and comments included, does: the text is what ran, and a checksum that
forgives edits would hide them. The prefix names the algorithm so a later change of algorithm
can be told apart from drift.
"""

from __future__ import annotations

import hashlib

ALGORITHM = "sha256"


def normalise_sql(sql: str) -> str:
    """The text the checksum is taken over: line ends made LF, nothing else touched."""
    return sql.replace("\r\n", "\n")


def sql_checksum(sql: str) -> str:
    """``"sha256:<64 hex digits>"`` of the normalised SQL."""
    digest = hashlib.sha256(normalise_sql(sql).encode("utf-8")).hexdigest()
    return f"{ALGORITHM}:{digest}"


def files_checksum(files: dict[str, bytes]) -> str:
    """``"sha256:<hex>"`` over every file's name and content, in name order: a MigrationSet's
    sourceChecksum. The operator takes it over its ConfigMaps and the Job over the directory it
    reads, so both give the same value for the same files."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return f"{ALGORITHM}:{digest.hexdigest()}"


def directory_files(path: str) -> dict[str, bytes]:
    """The files of a directory by name, as ``files_checksum`` takes them: hidden files (a
    projected volume's ``..data``) and subdirectories are left out, as the loader leaves them."""
    from pathlib import Path  # noqa: PLC0415 (rarely needed)

    return {
        p.name: p.read_bytes()
        for p in sorted(Path(path).iterdir())
        if not p.name.startswith(".") and p.is_file()
    }
