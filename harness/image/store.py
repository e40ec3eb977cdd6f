"""Local image storage (containers-storage, as buildah keeps it): which images it holds, and what
an image says about how to run it. The node runner resolves pods' images here; nothing is pulled.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

BUILDAH = shutil.which("buildah") or "/usr/bin/buildah"


@dataclass(frozen=True)
class LocalImage:
    """One image in local storage, under the name it was found by."""

    name: str  # the resolved name, e.g. localhost/kubemigrate:dev
    id: str  # the config's digest, 64 hex digits (what `buildah images` shows)
    digest: str  # the manifest's digest, sha256:... (what a registry would show)
    config: dict[str, Any]  # the OCI image config's `config`: User, Env, Entrypoint, Cmd...

    @property
    def repository(self) -> str:
        """The name without its tag."""
        slash = self.name.rfind("/")
        colon = self.name.rfind(":")
        return self.name[:colon] if colon > slash else self.name

    @property
    def image_id(self) -> str:
        """containerStatuses[].imageID as a kubelet reports it: repository@digest."""
        return f"{self.repository}@{self.digest}"

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})


def inspect(ref: str) -> LocalImage | None:
    """The image ref names in local storage (buildah's short-name rules: `kubemigrate:dev` finds
    `localhost/kubemigrate:dev`), or None when it holds no such image."""
    if not ref or ref.startswith("-"):
        return None
    try:
        proc = subprocess.run(
            [BUILDAH, "inspect", "--type", "image", ref],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:  # no buildah (make image-deps): no local images either
        return None
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)
    return LocalImage(
        name=data["FromImage"],
        id=data["FromImageID"],
        digest=data["FromImageDigest"],
        config=dict((data.get("OCIv1") or {}).get("config") or {}),
    )


def tagged_ids() -> set[str]:
    """The IDs of every image that has a name (not a leftover of an earlier build)."""
    out = subprocess.run(
        [BUILDAH, "images", "--no-trunc", "--format", "{{.ID}} {{.Name}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        line.split()[0].removeprefix("sha256:")
        for line in out.splitlines()
        if line.strip() and "<none>" not in line
    }
