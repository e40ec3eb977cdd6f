"""A migrations directory as Kubernetes objects: ConfigMaps under the size limit and a MigrationSet.

Pure data in, plain dicts out, so ``kubemigrate manifests`` only has to read files and print YAML.
A ConfigMap is one etcd object, refused over 1 MiB; a directory larger than that is split over
several ConfigMaps, each named with a hash of what it holds (as kustomize's ``configMapGenerator``
does). Changing a file then changes a name in the MigrationSet's spec: a new generation the
operator acts on, and in git a diff a reviewer sees.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

API_VERSION = "kubemigrate.dev/v1alpha1"
CONFIGMAP_LIMIT = 1024 * 1024
DEFAULT_BUDGET = 1_000_000
"""Bytes of keys and values per ConfigMap: the 1 MiB limit less room for metadata and YAML."""
SET_LABEL = "kubemigrate.dev/migration-set"

_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MAX_NAME = 63
"""A label value's limit: the ConfigMaps carry the set's name in ``SET_LABEL``."""


class BundleError(ValueError):
    """The directory or the options cannot make valid objects; the message says which and why."""


@dataclass(frozen=True)
class SourceFile:
    """One migration file: its name (the ConfigMap key) and its text."""

    name: str
    text: str

    @property
    def size(self) -> int:
        return len(self.name) + len(self.text.encode())


@dataclass(frozen=True)
class SetOptions:
    """What the MigrationSet says besides its source."""

    name: str
    secret: str
    secret_key: str = "url"  # noqa: S105 - the name of the Secret's key, not a secret
    namespace: str | None = None
    target_version: str | None = None
    hashed_names: bool = True
    budget: int = DEFAULT_BUDGET


def check_options(options: SetOptions) -> None:
    """Refuse names the API would refuse, before anything is printed."""
    if not _NAME.fullmatch(options.name) or len(options.name) > _MAX_NAME:
        raise BundleError(
            f"--name {options.name!r}: use lowercase letters, digits and '-' "
            f"(at most {_MAX_NAME} characters), starting and ending with a letter or digit"
        )
    if not options.secret or len(options.secret) > 253:
        raise BundleError("--secret: a Secret's name is 1 to 253 characters")
    if not _KEY.fullmatch(options.secret_key):
        raise BundleError(f"--secret-key {options.secret_key!r}: not a valid Secret key")
    if options.budget < 1 or options.budget > CONFIGMAP_LIMIT:
        raise BundleError(f"the size per ConfigMap must be 1 to {CONFIGMAP_LIMIT} bytes")


def pack(files: Sequence[SourceFile], budget: int) -> list[list[SourceFile]]:
    """The files, in name order, in as few consecutive groups of at most ``budget`` bytes as a
    first fit gives; a file too big for any ConfigMap is refused (ship it in an image)."""
    if not files:
        raise BundleError("no migration files: the directory holds no .sql file")
    groups: list[list[SourceFile]] = [[]]
    used = 0
    for file in sorted(files, key=lambda f: f.name):
        if not _KEY.fullmatch(file.name) or len(file.name) > 253:
            raise BundleError(f"{file.name}: not a valid ConfigMap key (letters, digits, -._)")
        if file.size > budget:
            raise BundleError(
                f"{file.name}: {file.size} bytes, more than a ConfigMap holds ({budget}); "
                "use source.image for a directory with files this large"
            )
        if used + file.size > budget:
            groups.append([])
            used = 0
        groups[-1].append(file)
        used += file.size
    return groups


def content_hash(files: Iterable[SourceFile]) -> str:
    """Ten hex digits of sha256 over every name and text, unambiguously joined."""
    digest = hashlib.sha256()
    for file in files:
        for part in (file.name, file.text):
            data = part.encode()
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
    return digest.hexdigest()[:10]


def configmap_name(options: SetOptions, group: Sequence[SourceFile], index: int, count: int) -> str:
    """``<set>-migrations``, with ``-<n>`` when split and ``-<hash>`` unless names are stable."""
    name = f"{options.name}-migrations"
    if count > 1:
        name += f"-{index + 1}"
    if options.hashed_names:
        name += f"-{content_hash(group)}"
    return name


def manifests(files: Sequence[SourceFile], options: SetOptions) -> list[dict[str, Any]]:
    """The ConfigMaps holding ``files``, then the MigrationSet that reads them."""
    check_options(options)
    groups = pack(files, options.budget)
    configmaps = [
        _configmap(configmap_name(options, group, i, len(groups)), group, options)
        for i, group in enumerate(groups)
    ]
    return [*configmaps, _migration_set(options, [c["metadata"]["name"] for c in configmaps])]


def _metadata(name: str, options: SetOptions, labels: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if options.namespace:
        metadata["namespace"] = options.namespace
    if labels:
        metadata["labels"] = labels
    return metadata


def _configmap(name: str, group: Sequence[SourceFile], options: SetOptions) -> dict[str, Any]:
    configmap: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(name, options, {SET_LABEL: options.name}),
    }
    if options.hashed_names:
        configmap["immutable"] = True  # its name is its content: a change is a new ConfigMap
    configmap["data"] = {f.name: f.text for f in group}
    return configmap


def _migration_set(options: SetOptions, configmaps: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "database": {"secretRef": {"name": options.secret, "key": options.secret_key}},
        "source": {"configMaps": [{"name": n} for n in configmaps]},
    }
    if options.target_version is not None:
        spec["targetVersion"] = options.target_version
    return {
        "apiVersion": API_VERSION,
        "kind": "MigrationSet",
        "metadata": _metadata(options.name, options, {}),
        "spec": spec,
    }
