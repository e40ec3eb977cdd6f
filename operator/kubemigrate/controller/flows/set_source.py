"""A MigrationSet's files as the operator sees them: its ConfigMaps read, merged and parsed by
the engine exactly as the CLI reads a directory, before any Job exists; so a missing ConfigMap,
a file name in two of them, unparseable names or duplicate versions are refused in seconds,
with nothing applied. An image source cannot be read here: the Job reads it."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubemigrate.controller.build.set_job import merge
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.kube.api import NotFound
from kubemigrate.engine import MigrationSource, SourceError, files_checksum, load_directory
from kubemigrate.models.migration_set import MigrationSetSpec


@dataclass(frozen=True)
class ReadSource:
    """The set's migrations, their checksum, and each ConfigMap's file names (for the Job)."""

    sources: list[MigrationSource]
    checksum: str
    keys: dict[str, list[str]]

    @property
    def versions(self) -> list[str]:
        return [s.version for s in self.sources]

    @property
    def newest(self) -> str:
        return self.sources[-1].version


@dataclass(frozen=True)
class Refusal:
    """Why the source cannot be run; transient when time may cure it (a ConfigMap not there
    yet), else only a change of the source or the spec does."""

    reason: str
    message: str
    transient: bool = False


async def read(
    namespace: str,
    spec: MigrationSetSpec,
    ctx: StepContext,
    previous: ReadSource | None = None,
) -> ReadSource | Refusal:
    """The set's ConfigMaps as migrations (the spec must have configMaps). previous, the last
    read, is reused when the files are the same: a running set reads them every few seconds,
    and parsing hundreds of files each time would take CPU from the Job it follows."""
    assert spec.source.config_maps is not None
    found: list[tuple[str, dict[str, str]]] = []
    for ref in spec.source.config_maps:
        try:
            found.append((ref.name, await ctx.api.configmap_data(namespace, ref.name)))
        except NotFound as exc:
            return Refusal("ConfigMapNotFound", str(exc), transient=True)
    merged = merge(found)
    if merged.problems:
        return Refusal("DuplicateFile", "; ".join(merged.problems))
    keys = {name: sorted(data) for name, data in found}
    if previous is not None and previous.keys == keys:
        checksum = files_checksum({k: v.encode() for k, v in merged.files.items()})
        if checksum == previous.checksum:
            return previous
    return await asyncio.to_thread(_parse, merged.files, found)


def _parse(files: dict[str, str], found: list[tuple[str, dict[str, str]]]) -> ReadSource | Refusal:
    """Parse files as the CLI parses a directory (through a temporary one, so nothing differs)."""
    with tempfile.TemporaryDirectory(prefix="kubemigrate-set-") as tmp:
        for name, text in files.items():
            if "/" in name or name.startswith("."):
                continue  # not a ConfigMap key the API accepts; never a path outside tmp
            Path(tmp, name).write_text(text, encoding="utf-8")
        try:
            sources = load_directory(tmp)
        except SourceError as exc:
            problems = "; ".join(exc.problems)
            return Refusal("InvalidSource", f"invalid migrations: {problems}"[:2000])
    if not sources:
        names = ", ".join(name for name, _ in found)
        return Refusal("EmptySource", f"ConfigMap(s) {names} hold no migration file")
    checksum = files_checksum({k: v.encode() for k, v in files.items()})
    keys = {name: sorted(data) for name, data in found}
    return ReadSource(sources, checksum, keys)


def source_identity(spec: MigrationSetSpec, source: ReadSource | None) -> str:
    """What the set's files are, for its run and rollout keys: the ConfigMaps' checksum, or the
    image reference and path (the operator cannot read an image's files)."""
    if source is not None:
        return source.checksum
    image = spec.source.image
    return f"{image.reference}:{image.path}" if image else ""
