"""pydantic's JSON Schema constructs and their structural rewrites."""

from __future__ import annotations

import pytest
from pydantic import ConfigDict, Field

from kubemigrate.models.base import SpecModel, cel, validations
from kubemigrate.models.gen.structural import NotStructural, structural


class Inner(SpecModel):
    """Inner's own description."""

    model_config = ConfigDict(json_schema_extra=validations(cel("model-rule", "m")))

    value: int = Field(1, description="v", ge=0)


class Outer(SpecModel):
    required_inner: Inner = Field(description="r")
    optional_inner: Inner | None = Field(
        None, description="o", json_schema_extra=validations(cel("field-rule", "f"))
    )
    undocumented: Inner | None = None
    tags: list[str] = Field(default_factory=list, max_length=3)


def test_references_and_optionals_are_inlined() -> None:
    s = structural(Outer.model_json_schema(by_alias=True))
    assert "$defs" not in s and "title" not in s and "additionalProperties" not in s
    props = s["properties"]
    assert props["requiredInner"]["description"] == "r"  # the field's words win
    assert props["requiredInner"]["properties"]["value"] == {
        "default": 1, "description": "v", "minimum": 0, "type": "integer",
    }  # fmt: skip
    assert props["undocumented"]["description"] == "Inner's own description."
    assert "default" not in props["optionalInner"]
    assert s["required"] == ["requiredInner"]
    assert props["tags"] == {"items": {"type": "string"}, "maxItems": 3, "type": "array"}


def test_model_rules_and_field_rules_add_up() -> None:
    s = structural(Outer.model_json_schema(by_alias=True))
    rules = [r["rule"] for r in s["properties"]["optionalInner"]["x-kubernetes-validations"]]
    assert rules == ["model-rule", "field-rule"]


def test_unions_are_refused() -> None:
    class Union(SpecModel):
        either: int | str

    with pytest.raises(NotStructural, match="union"):
        structural(Union.model_json_schema(by_alias=True))


def test_const_becomes_an_enum() -> None:
    assert structural({"type": "string", "const": "x"}) == {"type": "string", "enum": ["x"]}
