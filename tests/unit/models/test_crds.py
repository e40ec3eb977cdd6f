"""The committed CRDs are exactly what the models generate, and the API server can accept them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubemigrate.models.gen import crds, reference

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"

# Keys of a structural schema the API server accepts (JSONSchemaProps in apiextensions/v1).
ALLOWED = {
    "description", "type", "format", "default", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "multipleOf", "enum", "maxProperties", "minProperties", "required", "items",
    "properties", "additionalProperties", "nullable", "x-kubernetes-validations",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
    "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
}  # fmt: skip


def test_committed_crds_match_the_models() -> None:
    problems = crds.drifted(CRD_DIR)
    assert not problems, (
        "crds/ has drifted from operator/kubemigrate/models; run `make crds` and commit:\n"
        + "\n".join(problems)
    )


def test_rendering_is_deterministic() -> None:
    assert crds.rendered() == crds.rendered()


def schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in crds.RESOURCES:
        yield resource.kind, crds.open_api_schema(resource)


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize(("kind", "schema"), list(schemas()))
def test_schema_is_structural(kind: str, schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        assert "type" in node, f"{kind}{path} has no type"
        assert set(node) <= ALLOWED, f"{kind}{path} has {set(node) - ALLOWED}"
        assert not ("properties" in node and "additionalProperties" in node), f"{kind}{path}"
        assert node.get("x-kubernetes-preserve-unknown-fields") is None, f"{kind}{path}"
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []), f"{kind}{path}: map key {key} optional"


@pytest.mark.parametrize(("kind", "schema"), list(schemas()))
def test_every_field_is_documented_for_kubectl_explain(kind: str, schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        if path in ("", ".metadata") or path.endswith("[]"):
            continue
        assert node.get("description"), f"{kind}{path} has no description"


@pytest.mark.parametrize(("kind", "schema"), list(schemas()))
def test_every_cel_rule_has_a_message(kind: str, schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule.get("message"), f"{kind}{path}: {rule}"
            assert set(rule) <= {"rule", "message", "fieldPath", "reason"}


def test_long_strings_under_cel_have_a_max_length() -> None:
    """CEL cost estimation refuses a CRD whose rules touch unbounded strings or lists."""
    for kind, schema in schemas():
        for path, node in walk(schema):
            if path.startswith(".spec") and node["type"] == "string" and "enum" not in node:
                assert "maxLength" in node, f"{kind}{path}"
            if path.startswith(".spec") and node["type"] == "array":
                assert "maxItems" in node, f"{kind}{path}"


def test_crd_names_and_printer_columns() -> None:
    docs = {r.kind: crds.crd(r) for r in crds.RESOURCES}
    mig = docs["Migration"]["spec"]
    assert mig["group"] == "kubemigrate.dev"
    assert mig["names"]["shortNames"] == ["mig"]
    assert mig["names"]["categories"] == ["kubemigrate"]
    version = mig["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert columns == ["Version", "Phase", "Duration", "Rollback", "Age"]
    assert docs["DatabaseBackup"]["spec"]["names"]["shortNames"] == ["dbbackup"]
    assert docs["DatabaseRestore"]["spec"]["names"]["shortNames"] == ["dbrestore"]


def test_check_reports_drift_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crds.main(["--write", str(tmp_path)]) == 0
    assert crds.main(["--check", str(tmp_path)]) == 0
    first = tmp_path / crds.file_name(crds.RESOURCES[0])
    first.write_text(first.read_text().replace("Migration", "Mutation"))
    (tmp_path / "kubemigrate.dev_stale.yaml").write_text("{}")
    capsys.readouterr()
    assert crds.main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{first}: differs from the models" in err
    assert "kubemigrate.dev_stale.yaml: no model generates it" in err
    assert "run `make crds`" in err


def test_stdout_is_one_yaml_stream(capsys: pytest.CaptureFixture[str]) -> None:
    assert crds.main([]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["name"] for d in docs] == [r.crd_name for r in crds.RESOURCES]


def test_committed_reference_matches_the_models() -> None:
    path = REPO / "docs" / "resources.md"
    assert path.read_text() == reference.render(), (
        "docs/resources.md has drifted from the models; run `make crds` and commit"
    )
