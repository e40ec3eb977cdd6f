"""Paths inside an image's root filesystem, resolved as the container will see them: symlinks
are followed within the root (an absolute link target starts at the root, never at the host's
`/`), as a runtime does for mount points and the working directory.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

MAX_LINKS = 40  # the kernel's limit on symlinks in one lookup


def resolve(root: Path, path: str) -> str:
    """path (absolute, in the container) with every existing symlink resolved inside root."""
    parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        host = root.joinpath(*done, part)
        if not host.is_symlink():
            done.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise OSError(f"too many levels of symbolic links in {path}")
        target = str(host.readlink())
        if target.startswith("/"):
            done = []
        parts = [p for p in target.split("/") if p and p != "."] + parts
    return "/" + "/".join(done)


def host_path(root: Path, path: str) -> Path:
    """Where the container's path lives in root on the host."""
    return root / resolve(root, path).lstrip("/")
