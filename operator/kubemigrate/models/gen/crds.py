"""Generate the CustomResourceDefinitions in crds/ from the models, or check them for drift.

    python -m kubemigrate.models.gen.crds                  # all CRDs to stdout, one YAML stream
    python -m kubemigrate.models.gen.crds --write crds/    # one file per CRD
    python -m kubemigrate.models.gen.crds --check crds/    # exit 1 naming the files that drifted

The models are the source of truth; crds/ is their committed rendering, so a review shows the
API change and ``kubectl apply -f crds/`` needs no Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from kubemigrate.models import backup, migration, migration_set, restore, schedule
from kubemigrate.models.base import GROUP, VERSION, Resource
from kubemigrate.models.gen.structural import structural

RESOURCES: tuple[Resource, ...] = (
    migration.RESOURCE,
    backup.RESOURCE,
    restore.RESOURCE,
    schedule.RESOURCE,
    migration_set.RESOURCE,
)

HEADER = "# Generated from operator/kubemigrate/models by `make crds`. Do not edit.\n"

API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#resources"
)
KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#types-kinds"
)


def open_api_schema(resource: Resource) -> dict[str, Any]:
    """The kind's structural schema, with the standard apiVersion, kind and metadata."""
    schema = structural(resource.model.model_json_schema(by_alias=True))
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "description": API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": KIND_DOC}
    props["metadata"] = {"type": "object"}
    return schema


def crd(resource: Resource) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": resource.crd_name,
            "labels": {"app.kubernetes.io/part-of": "kubemigrate"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": list(resource.short_names),
                "categories": list(resource.categories),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(resource.columns),
                    "schema": {"openAPIV3Schema": open_api_schema(resource)},
                }
            ],
        },
    }


def file_name(resource: Resource) -> str:
    return f"{GROUP}_{resource.plural}.yaml"


def render(resource: Resource) -> str:
    """The YAML text of one CRD: sorted keys, so the output depends on the models only. A JSON
    round trip first: a schema part shared by two fields would otherwise become a YAML anchor."""
    plain = json.loads(json.dumps(crd(resource)))
    body = yaml.safe_dump(plain, sort_keys=True, width=10_000, allow_unicode=True)
    return HEADER + body


def rendered() -> dict[str, str]:
    """File name -> content, for every CRD."""
    return {file_name(r): render(r) for r in RESOURCES}


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths


def drifted(directory: Path) -> list[str]:
    """Messages naming each file in directory that differs from the models (or is missing)."""
    problems = []
    expected = rendered()
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != text:
            problems.append(f"{path}: differs from the models")
    for path in sorted(directory.glob(f"{GROUP}_*.yaml")):
        if path.name not in expected:
            problems.append(f"{path}: no model generates it")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubemigrate.models.gen.crds", description=__doc__
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="DIR", type=Path, help="write one YAML file per CRD")
    mode.add_argument("--check", metavar="DIR", type=Path, help="exit 1 if DIR has drifted")
    args = parser.parse_args(argv)
    if args.write:
        for path in write(args.write):
            print(f"wrote {path}")
        return 0
    if args.check:
        problems = drifted(args.check)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("the CRDs are out of date: run `make crds`", file=sys.stderr)
        return 1 if problems else 0
    sys.stdout.write("---\n".join(render(r) for r in RESOURCES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
