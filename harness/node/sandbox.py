"""A pod's mount namespace with bubblewrap: the host's filesystem, plus the pod's volumes at their
in-pod paths, without creating or changing anything on the host.

The sandbox root is bwrap's tmpfs with each top-level host entry bound into it, and fresh /dev,
/proc and /tmp. bwrap creates a missing mount point in whatever holds its parent, so a mount
point such as /run/secrets/... (host /run exists) would be created on the host: every existing
host directory on the way to a missing mount point is "spliced" instead, i.e. recreated in the
sandbox's tmpfs with its children bound one by one. Targets are resolved through host symlinks
first (/var/run -> /run), since bwrap does not follow them when it creates mount points.

The command runs in new PID, IPC and UTS namespaces (hostname = pod name) and shares the host's
network, so 127.0.0.1 reaches the API server and PostgreSQL. `--die-with-parent` kills the pod if
the thread supervising it (or the runner) dies.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.paths import REPO

BWRAP = "/usr/bin/bwrap"
# Fresh inside every sandbox, so mount points below them never touch the host.
PRIVATE = ("/dev", "/proc", "/tmp")
# The checkout holds the venv whose CLI the pods run (the image's part): when it lives under a
# private root (a CI clone in /tmp), it is bound back in, read-only.
KEEP_VISIBLE = (REPO,)


@dataclass(frozen=True)
class Mount:
    """A host path made visible at target inside the sandbox."""

    source: Path
    target: str
    read_only: bool = False


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def resolve(target: str) -> str:
    """target as bwrap must see it: host symlinks resolved, except inside the private roots."""
    norm = os.path.normpath("/" + target)
    return norm if _under(norm, PRIVATE) else os.path.realpath(norm)


def splice_points(targets: Iterable[str]) -> set[str]:
    """Existing host directories that must be rebuilt in tmpfs to create the missing targets."""
    points: set[str] = set()
    for target in targets:
        if _under(target, PRIVATE) or os.path.lexists(target):
            continue
        ancestor = Path(target).parent
        while not os.path.lexists(ancestor):
            ancestor = ancestor.parent
        points.update(str(a) for a in [ancestor, *ancestor.parents] if str(a) != "/")
    return points


def _tree(directory: str, points: set[str]) -> list[str]:
    """bwrap arguments mirroring directory's children, recursing into splice points."""
    args: list[str] = []
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            path = entry.path
            if directory == "/" and path in PRIVATE:
                continue
            if path in points:
                args += ["--dir", path, *_tree(path, points)]
            elif entry.is_symlink():
                args += ["--symlink", str(Path(path).readlink()), path]
            else:
                args += ["--ro-bind" if path == "/sys" else "--bind", path, path]
    return args


def bwrap_argv(
    command: Sequence[str],
    *,
    mounts: Sequence[Mount],
    termination_log: Path,
    termination_path: str,
    workdir: str | None,
    hostname: str,
) -> list[str]:
    """The full argv running command in the pod's sandbox."""
    targets = [resolve(m.target) for m in mounts]
    term = resolve(termination_path)
    wd = resolve(workdir) if workdir else "/"
    in_volume = _under(wd, targets)
    needs_dir = in_volume or _under(wd, PRIVATE) or not Path(wd).is_dir()
    points = splice_points([*targets, term, *([] if in_volume else [wd])])

    args = [
        BWRAP,
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        hostname[:63].rstrip(".-") or "pod",
    ]
    args += _tree("/", points)
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for mount, target in sorted(zip(mounts, targets, strict=True), key=lambda mt: mt[1].count("/")):
        args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), target]
    for keep in KEEP_VISIBLE:  # after the volumes: an emptyDir at /tmp must not hide it
        if _under(str(keep), PRIVATE):
            args += ["--ro-bind", str(keep), str(keep)]
    args += ["--bind", str(termination_log), term]
    if needs_dir and wd != "/":
        args += ["--dir", wd]
    return [*args, "--chdir", wd, "--", *command]
