"""``kubemigrate manifests DIR``: a migrations directory as YAML for ``kubectl apply -f -``.

The directory is read and checked as every command reads it (so what would not load in the
operator's Job is refused here, before anything reaches a cluster); its ``.sql`` files, byte for
byte, become ConfigMap keys (see ``cli.bundle``), followed by the MigrationSet that reads them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

from kubemigrate import engine
from kubemigrate.cli.bundle import BundleError, SetOptions, SourceFile, manifests
from kubemigrate.cli.command import EXIT_OK, EXIT_USAGE
from kubemigrate.cli.output import Output


class _Dumper(yaml.SafeDumper):
    """Multi-line text as a ``|`` block, so SQL in a ConfigMap reads as it does in its file."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def read_files(directory: Path) -> list[SourceFile]:
    """Every file the engine reads from ``directory`` (its ``.sql`` files, not hidden), as text."""
    with os.scandir(directory) as scan:
        names = sorted(
            e.name for e in scan if e.name.endswith(".sql") and not e.name.startswith(".")
        )
    return [
        SourceFile(name, (directory / name).read_bytes().decode("utf-8"))
        for name in names
        if (directory / name).is_file()
    ]


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML stream, keys in the order given."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, explicit_start=True)


def run_manifests(args: argparse.Namespace, out: Output) -> int:
    directory = Path(args.directory)
    sources = engine.load_directory(directory)  # a SourceError is a usage error (exit 2)
    options = SetOptions(
        name=args.name,
        secret=args.secret,
        secret_key=args.secret_key,
        namespace=args.namespace,
        target_version=args.target_version,
        hashed_names=not args.stable_names,
        budget=args.max_bytes,
    )
    try:
        documents = manifests(read_files(directory), options)
    except BundleError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    versions = {s.version for s in sources}
    if args.target_version not in (None, "0") and args.target_version not in versions:
        out.error(f"--target-version {args.target_version}: no such version in {directory}")
        return EXIT_USAGE
    out.verbatim(to_yaml(documents))
    out.detail(f"{len(sources)} migrations in {len(documents) - 1} ConfigMap(s)")
    return EXIT_OK
