"""Images' root filesystems, unpacked once per image ID into a cache outside the repo, for the
node runner to use as the read-only lower layer of each container's overlay.

An image is unpacked by copying its files out of a buildah working container (`buildah from`,
`buildah mount`, `cp -a`), a few seconds once per image; the copy is a plain directory, so no
mount outlives it and the runner needs buildah only to find images. Unpacking takes a file lock
and renames a finished copy into place, so concurrent pods and runners share one copy. A copy
whose image has lost its name (rebuilt, removed) is deleted once unused for an hour (at the next
unpack of another image).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from harness.image import store
from harness.paths import CACHE

ROOTS = CACHE / "rootfs"
KEEP_UNUSED = 3600.0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _copy_out(image_id: str, dest: Path) -> None:
    """The image's files into dest, through a buildah working container."""
    buildah = store.BUILDAH
    ctr = subprocess.run(
        [buildah, "from", "--pull=never", "--quiet", image_id],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        mount = subprocess.run(
            [buildah, "mount", ctr], check=True, capture_output=True, text=True
        ).stdout.strip()
        dest.mkdir(parents=True)
        subprocess.run(["cp", "-a", f"{mount}/.", str(dest)], check=True)
    finally:
        subprocess.run([buildah, "umount", ctr], check=False, capture_output=True)
        subprocess.run([buildah, "rm", ctr], check=False, capture_output=True)


def _prune(keep: str) -> None:
    """Delete copies of images that lost their name and went unused for KEEP_UNUSED, and
    unfinished copies (a runner killed while unpacking) as old."""
    named = store.tagged_ids() | {keep}
    for root in ROOTS.iterdir():
        if not root.is_dir() or root.name in named:
            continue
        stamp = root.with_suffix(".used")
        used = (stamp if stamp.exists() else root).stat().st_mtime
        if time.time() - used > KEEP_UNUSED:
            shutil.rmtree(root, ignore_errors=True)
            stamp.unlink(missing_ok=True)
            root.with_suffix(".lock").unlink(missing_ok=True)


def rootfs(image: store.LocalImage) -> Path:
    """The directory holding image's files (unpacked now if this is its first use)."""
    root = ROOTS / image.id
    if not root.is_dir():
        with _locked(ROOTS / f"{image.id}.lock"):
            if not root.is_dir():
                tmp = ROOTS / f".{image.id}.{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                try:
                    _copy_out(image.id, tmp)
                    tmp.rename(root)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                _prune(image.id)
    root.with_suffix(".used").touch()
    return root
