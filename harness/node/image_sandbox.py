"""A container's sandbox made from its image, as a container runtime makes it.

The root is an overlay: the image's unpacked files (rootfs) as the read-only lower layer and a
fresh per-run directory as the writable one, mounted by `sh` in a private mount namespace made
by `unshare`, so it disappears with the container. bubblewrap binds that overlay as `/`, adds
fresh /dev (with a 1777 /dev/shm and /dev/mqueue) and /proc, a read-only /sys, the pod's
volumes, /etc/hosts, /etc/hostname, /etc/resolv.conf and the termination-message file, then
remounts `/` read-only when readOnlyRootFilesystem is set. Mount targets and the working
directory are resolved through the image's symlinks (/var/run -> /run); missing parents are
created with mode 0755 in the writable layer (or in the volume holding them), as a runtime
creates mount points.

bubblewrap runs as root; its command is runas (harness/cluster/cmd/runas), bound at RUNAS,
which takes the pod's uid, gid and groups and execs the container's command. The container
gets only the environment given (image's, then the pod's), new PID, IPC and UTS namespaces,
and the host's network.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.node.identity import Identity
from harness.node.rootpath import resolve
from harness.node.sandbox import BWRAP, Mount

UNSHARE = "/usr/bin/unshare"
SH = "/bin/sh"
RUNAS = "/dev/.runas"
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # for unshare, sh and mount, not the container
OVERLAY = (
    'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && shift 4 && exec "$@"'
)


@dataclass(frozen=True)
class ImageBox:
    """Everything one run of a container from an image needs."""

    rootfs: Path  # the image's files: the overlay's lower layer, never written
    layer: Path  # an empty directory for this run's writable layer
    mounts: Sequence[Mount]  # volumes, /etc files, the termination-message file
    workdir: str
    hostname: str
    env: Mapping[str, str]
    identity: Identity
    read_only: bool
    runas: Path


def _ancestors(path: str) -> list[str]:
    """The directories above path, outermost first, without `/`."""
    out: list[str] = []
    parent = posixpath.dirname(path)
    while parent not in ("/", ""):
        out.insert(0, parent)
        parent = posixpath.dirname(parent)
    return out


def _mount_args(box: ImageBox) -> list[str]:
    """--dir for each parent (0755, in order), then the binds, shallowest target first."""
    targets = [(resolve(box.rootfs, m.target), m) for m in box.mounts]
    args: list[str] = []
    made: set[str] = set()
    for target, mount in sorted(targets, key=lambda tm: tm[0].count("/")):
        for parent in _ancestors(target):
            if parent not in made:
                made.add(parent)
                args += ["--dir", parent]
        args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), target]
    return args


def _runas(box: ImageBox, report_fd: int) -> list[str]:
    ident = box.identity
    argv = [
        RUNAS,
        "-uid",
        str(ident.uid),
        "-gid",
        str(ident.gid),
        "-groups",
        ",".join(map(str, ident.groups)),
    ]
    if ident.no_new_privs:
        argv.append("-no-new-privs")
    if report_fd >= 0:
        argv += ["-report-fd", str(report_fd)]
    return argv


def _bwrap_options(box: ImageBox) -> list[str]:
    """bubblewrap's options: namespaces, the root, the mounts, user-visible environment."""
    options = [
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        box.hostname[:63].rstrip(".-") or "pod",
        "--bind",
        str(box.layer / "merged"),
        "/",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--tmpfs",
        "/dev/shm",
        "--mqueue",
        "/dev/mqueue",
        "--proc",
        "/proc",
        "--ro-bind",
        "/sys",
        "/sys",
        *_mount_args(box),
        "--ro-bind",
        str(box.runas),
        RUNAS,
    ]
    workdir = resolve(box.rootfs, box.workdir or "/")
    for parent in [*_ancestors(workdir), workdir]:
        if parent != "/":
            options += ["--dir", parent]
    if box.read_only:
        options += ["--remount-ro", "/"]
    options += ["--chdir", workdir, "--clearenv"]
    for name, value in box.env.items():
        options += ["--setenv", name, value]
    return options


def image_argv(
    box: ImageBox, command: Sequence[str], report_fd: int = -1, args_fd: int = -1
) -> tuple[list[str], bytes]:
    """The full argv running command in the container (run it with env={"PATH": HOST_PATH}).
    With args_fd, bubblewrap reads its options from that fd (`--args`), so the container's
    environment (Secrets included) stays off the host's process list: the second value is what
    to write there."""
    upper, work, merged = (box.layer / d for d in ("upper", "work", "merged"))
    prefix = [UNSHARE, "--mount", "--propagation", "private", "--", SH, "-c", OVERLAY, "sh"]
    prefix += [str(box.rootfs), str(upper), str(work), str(merged), BWRAP]
    options = _bwrap_options(box)
    tail = ["--", *_runas(box, report_fd), "--", *command]
    if args_fd < 0:
        return [*prefix, *options, *tail], b""
    payload = b"".join(option.encode() + b"\0" for option in options)
    return [*prefix, "--args", str(args_fd), *tail], payload


def make_layer(layer: Path) -> None:
    """The empty directories of a run's writable layer."""
    for d in ("upper", "work", "merged"):
        (layer / d).mkdir(parents=True)
