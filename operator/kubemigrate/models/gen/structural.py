"""Turn pydantic's JSON Schema into a Kubernetes structural schema.

The API server accepts only structural OpenAPI v3 schemas: every node has a ``type``, no
``$ref``, no ``anyOf`` standing in for a type, no ``const`` or ``title``, and ``properties`` never
beside ``additionalProperties``. pydantic writes references, ``anyOf [X, null]`` for optional
fields and ``additionalProperties: false`` for forbidden extras; this module rewrites those and
keeps everything the API server uses: descriptions (for ``kubectl explain``), defaults, enums,
patterns, bounds and the ``x-kubernetes-*`` extensions, CEL rules included.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

DROPPED = frozenset({"title", "$defs", "examples", "discriminator"})
"""JSON Schema keys with no place in a structural schema."""

RULES = "x-kubernetes-validations"


class NotStructural(ValueError):
    """The model uses a construct a CRD schema cannot express (e.g. a union of two types)."""


def structural(schema: Schema) -> Schema:
    """The structural equivalent of a pydantic ``model_json_schema(by_alias=True)``."""
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: Schema, defs: Schema) -> Schema:
    node = _inline(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in DROPPED:
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _convert(value, defs)
            continue  # `false` is the API server's pruning; `true` is not structural
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key == "default" and value is None:
            continue
        else:
            out[key] = value
    if "type" not in out:
        raise NotStructural(f"schema without a type: {sorted(node)}")
    return out


def _inline(node: Schema, defs: Schema) -> Schema:
    """Resolve ``$ref``, ``allOf [ref]`` and ``anyOf [X, null]`` into one plain node."""
    if "$ref" in node:
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _merge(_inline(_resolve(node["$ref"], defs), defs), rest)
    if "allOf" in node:
        (only,) = node["allOf"]
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _merge(_inline(only, defs), rest)
    if "anyOf" in node:
        members = [m for m in node["anyOf"] if m != {"type": "null"}]
        if len(members) != 1:
            raise NotStructural(f"a union of several types is not structural: {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _merge(_inline(members[0], defs), rest)
    return node


def _resolve(ref: str, defs: Schema) -> Schema:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise NotStructural(f"unsupported reference {ref}")
    target: Schema = defs[ref.removeprefix(prefix)]
    return target


def _merge(base: Schema, over: Schema) -> Schema:
    """over's keys win (a field's description over its model's), but CEL rules add up."""
    merged = {**base, **over}
    if RULES in base and RULES in over:
        merged[RULES] = [*base[RULES], *over[RULES]]
    return merged
