"""`make image`: the repository's Dockerfile built with buildah (chroot isolation: no daemon, no
container engine) FROM the mmdebstrap base, with Debian's PostgreSQL client, as
localhost/kubemigrate:dev in local storage, where the node runner finds it.

The image carries a label with a hash of its build context and arguments, so `ensure()` (the
test session, `make image`) rebuilds only when the code, the Dockerfile or the base changed, and
the in-cluster tests never run stale code. buildah's layer cache makes a code-only change
rebuild only the wheel and the last layers.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from harness.image import base, store
from harness.paths import REPO

DEV_REPOSITORY = "localhost/kubemigrate"
DEV_TAG = os.environ.get("KUBEMIGRATE_DEV_TAG") or "dev"
"""KUBEMIGRATE_DEV_TAG: another tag, for checkouts that share one image storage (several
worktrees on one machine would otherwise rebuild one tag under each other's running tests)."""
DEV_IMAGE = f"{DEV_REPOSITORY}:{DEV_TAG}"
SOURCE_LABEL = "dev.kubemigrate.source"
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
CONTEXT_DIRS = ("operator",)
SKIPPED = ("__pycache__", ".egg-info", ".pyc")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PYPI = "https://pypi.org/simple"


def _context() -> list[Path]:
    files = [REPO / f for f in CONTEXT_FILES]
    for d in CONTEXT_DIRS:
        files += [
            p
            for p in (REPO / d).rglob("*")
            if p.is_file() and not any(s in str(p.relative_to(REPO)) for s in SKIPPED)
        ]
    return sorted(files)


def build_args() -> list[str]:
    return [f"PYTHON_IMAGE={base.name()}", "PG_CLIENT=base", f"PG_MAJOR={base.PG_MAJOR}"]


def source_hash() -> str:
    """What the image is built from: the build context's files and the build arguments."""
    h = hashlib.sha256("\n".join(build_args()).encode())
    for path in _context():
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _bud_argv(tag: str) -> list[str]:
    argv = [
        store.BUILDAH,
        "bud",
        "--isolation",
        "chroot",
        "--layers",
        "--pull=never",
        "--label",
        f"{SOURCE_LABEL}={source_hash()}",
        "--tag",
        tag,
        "--build-arg",
        f"PIP_INDEX_URL={os.environ.get('PIP_INDEX_URL') or PYPI}",
    ]
    for arg in build_args():
        argv += ["--build-arg", arg]
    if HOST_CA.is_file():  # the host's trust store, for pip behind a TLS-inspecting proxy
        argv += ["--build-arg", f"PIP_CERT={HOST_CA}", "--volume", f"{HOST_CA}:{HOST_CA}:ro"]
    return [*argv, str(REPO)]


def build(tag: str = DEV_IMAGE) -> store.LocalImage:
    """Build the image (the base first, if missing) and return it as stored."""
    base.ensure()
    subprocess.run(_bud_argv(tag), check=True, cwd=REPO)
    image = store.inspect(tag)
    if image is None:
        raise RuntimeError(f"buildah built {tag}, yet local storage does not hold it")
    return image


def ensure(tag: str = DEV_IMAGE) -> store.LocalImage:
    """The image, built only when it is missing or was built from other sources."""
    image = store.inspect(tag)
    if image is not None and image.labels.get(SOURCE_LABEL) == source_hash():
        return image
    return build(tag)
