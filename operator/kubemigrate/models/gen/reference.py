"""docs/resources.md, generated from the same schemas as the CRDs so the two never disagree.

python -m kubemigrate.models.gen.reference --write docs/resources.md
python -m kubemigrate.models.gen.reference --check docs/resources.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubemigrate.models.base import API_VERSION, Resource
from kubemigrate.models.gen.crds import RESOURCES, open_api_schema

INTRO = f"""\
# Resource reference

<!-- Generated from operator/kubemigrate/models by `make crds`. Do not edit. -->

All kinds are namespaced, in API version `{API_VERSION}`, and listed together by
`kubectl get kubemigrate`. `kubectl explain <kind>.spec` shows the same descriptions.
"""


def _type(node: dict[str, Any]) -> str:
    if node["type"] == "array":
        return f"[]{_type(node['items'])}"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if node.get("format") == "date-time":
        return "timestamp"
    return str(node["type"])


def _rows(node: dict[str, Any], prefix: str) -> Iterator[str]:
    required = set(node.get("required", []))
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        default = f"`{_json(sub['default'])}`" if "default" in sub else ""
        req = "yes" if name in required else ""
        text = sub.get("description", "").replace("|", "\\|").replace("\n", " ")
        yield f"| `{path}` | {_type(sub)} | {req} | {default} | {text} |"
        inner = sub["items"] if sub["type"] == "array" else sub
        if "properties" in inner:
            yield from _rows(inner, f"{path}{'[]' if sub['type'] == 'array' else ''}.")


def _json(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_json(v)}" for k, v in value.items()) + "}"
    return str(value)


def _rules(node: dict[str, Any]) -> Iterator[str]:
    for rule in node.get("x-kubernetes-validations", []):
        yield rule["message"]
    for sub in node.get("properties", {}).values():
        yield from _rules(sub)
    if "items" in node:
        yield from _rules(node["items"])


def section(resource: Resource) -> str:
    schema = open_api_schema(resource)
    names = ", ".join(f"`{n}`" for n in (resource.plural, resource.singular, *resource.short_names))
    lines = [f"## {resource.kind}", "", schema["description"], "", f"Names: {names}.", ""]
    for part in ("spec", "status"):
        lines += [
            f"### {part}",
            "",
            "| field | type | required | default | description |",
            "|---|---|---|---|---|",
            *_rows(schema["properties"][part], ""),
            "",
        ]
    rules = sorted(set(_rules(schema)))
    if rules:
        lines += ["Validation messages (CEL rules the API server enforces):", ""]
        lines += [f"- {message}" for message in rules]
        lines.append("")
    return "\n".join(lines)


def render() -> str:
    return "\n".join([INTRO, *(section(r) for r in RESOURCES)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubemigrate.models.gen.reference")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="FILE", type=Path)
    mode.add_argument("--check", metavar="FILE", type=Path)
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.write.write_text(text)
        return 0
    if args.check:
        if not args.check.exists() or args.check.read_text() != text:
            print(f"{args.check} is out of date: run `make crds`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
