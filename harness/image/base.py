"""The image's base: Debian bookworm with the runtime packages, made by mmdebstrap from Debian's
own repositories (Docker Hub and apt.postgresql.org are out of reach here, the Debian mirrors are
not), kept as a tarball outside the repo and imported into local storage as a one-layer image.

Its name carries a hash of everything that decides its contents (suite, mirrors, packages,
options), so a change to the list makes a new base; an unchanged list is never rebuilt, so the
security updates it holds are those of the day it was made (remove the tarball to refresh).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from harness.image import store
from harness.paths import CACHE

SUITE = "bookworm"
PG_MAJOR = 15  # the PostgreSQL client bookworm ships
PACKAGES = (
    "python3",
    "python3-venv",
    f"postgresql-client-{PG_MAJOR}",
    "ca-certificates",
    "passwd",
    "netbase",
)
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
OPTIONS = (
    "--variant=essential",  # dpkg and the Essential set; apt is not needed in the image
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REPOSITORY = "localhost/kubemigrate-base"
TARBALLS = CACHE / "images"


def key() -> str:
    """A short hash of the base's recipe."""
    recipe = json.dumps([SUITE, PACKAGES, MIRRORS, OPTIONS, PATH]).encode()
    return hashlib.sha256(recipe).hexdigest()[:12]


def name() -> str:
    return f"{REPOSITORY}:{key()}"


def tarball() -> Path:
    return TARBALLS / f"base-{key()}.tar"


def _make_tarball(path: Path) -> None:
    """mmdebstrap into a temporary file, renamed when complete (about a minute)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tar")
    argv = [
        "mmdebstrap",
        "--quiet",
        "--format=tar",  # not guessed from the name
        *OPTIONS,
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(tmp),
        *MIRRORS,
    ]
    try:
        subprocess.run(argv, check=True)
        tmp.rename(path)
    finally:
        tmp.unlink(missing_ok=True)


def _import(path: Path, image: str) -> None:
    """The tarball as a one-layer image (buildah's `from scratch`, `add`, `commit`)."""
    buildah = store.BUILDAH
    ctr = subprocess.run(
        [buildah, "from", "scratch"], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        subprocess.run([buildah, "add", "--quiet", ctr, str(path), "/"], check=True)
        subprocess.run(
            [
                buildah,
                "config",
                "--env",
                f"PATH={PATH}",
                "--cmd",
                '["/bin/bash"]',
                "--label",
                f"dev.kubemigrate.base.packages={','.join(PACKAGES)}",
                ctr,
            ],
            check=True,
        )
        subprocess.run(
            [buildah, "commit", "--quiet", ctr, image], check=True, stdout=subprocess.DEVNULL
        )
    finally:
        subprocess.run([buildah, "rm", ctr], check=False, capture_output=True)


def ensure() -> str:
    """The base's image name, made and imported only when missing."""
    image = name()
    if store.inspect(image) is None:
        if not tarball().is_file():
            print(f"making the base {image} with mmdebstrap ...", flush=True)
            _make_tarball(tarball())
        _import(tarball(), image)
    return image
