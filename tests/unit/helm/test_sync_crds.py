"""helm/sync_crds.py: the chart's CRD templates are the generated CRDs, and stay in sync.

Hermetic (no helm binary): the rendering is plain text, so it is checked as text and as YAML.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import yaml

REPO = Path(__file__).resolve().parents[3]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_crds", REPO / "helm" / "sync_crds.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync_crds = _load()


def test_chart_templates_have_not_drifted_from_crds() -> None:
    assert sync_crds.main(["--check"]) == 0, "run: .venv/bin/python helm/sync_crds.py"


def test_template_is_the_crd_with_keep_inside_the_toggle() -> None:
    for source in sorted((REPO / "crds").glob("*.yaml")):
        lines = sync_crds.render(source).splitlines(keepends=True)
        assert lines[0] == "{{- if .Values.crds.create }}\n"
        assert lines[-1] == "{{- end }}\n"
        crd = yaml.safe_load("".join(lines[1:-1]))
        want = yaml.safe_load(source.read_text())
        assert crd["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
        assert crd == want


def test_template_delimiters_in_a_crd_are_made_literal() -> None:
    text = "message: 'use {{ and }} literally'"
    escaped = sync_crds._escape(text)
    assert escaped == """message: 'use {{ "{{" }} and {{ "}}" }} literally'"""
