"""The Argo CD health check (helm/argocd/health.lua), run by real Lua interpreters.

Argo CD runs health scripts in gopher-lua (Lua 5.1) with the resource as the global `obj`; lupa
embeds the reference Lua implementations, so each case runs under Lua 5.1 (Argo CD's dialect)
and 5.4. Cases are the YAML fixtures in helm/argocd/testdata/, plus statuses built by the
operator's own status builder, so the script and the operator cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.argocd import SCRIPT, run_health
from kubemigrate.controller.build import status as status_builder
from kubemigrate.controller.build.conditions import DONE_PHASES, STALLED_PHASES
from kubemigrate.models.migration import MigrationPhase, MigrationStatus

REPO = Path(__file__).resolve().parents[3]
ARGOCD = REPO / "helm" / "argocd"
FIXTURES = sorted((ARGOCD / "testdata").glob("*.yaml"))
LUA_VERSIONS = ["lupa.lua51", "lupa.lua54"]
ALL_PHASES = [phase.value for phase in MigrationPhase]


def operator_status(phase: str, reason: str, message: str, generation: int) -> dict[str, object]:
    """The status JSON the operator's own builders write for a move to phase."""
    change = MigrationStatus(phase=MigrationPhase(phase), reason=reason, message=message)
    return status_builder.patch(status_builder.moved(change, generation, []))


def test_fixtures_exist() -> None:
    """Guards the parametrisation below against an empty glob silently testing nothing."""
    assert len(FIXTURES) >= 10


@pytest.mark.parametrize("module", LUA_VERSIONS)
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_fixture(fixture: Path, module: str) -> None:
    case = yaml.safe_load(fixture.read_text())
    assert run_health(case["object"], module) == case["expected"]


@pytest.mark.parametrize("phase", ALL_PHASES)
def test_operator_status_reads_as_its_kstatus_meaning(phase: str) -> None:
    """A status from the operator's own builder gets the health its conditions mean."""
    status = operator_status(phase, "Because", f"in {phase}", 4)
    obj = {"kind": "Migration", "metadata": {"name": "m", "generation": 4}, "status": status}
    want = (
        "Healthy"
        if phase in DONE_PHASES
        else "Degraded"
        if phase in STALLED_PHASES
        else "Progressing"
    )
    assert run_health(obj) == {"status": want, "message": f"in {phase}"}


def test_operator_status_of_an_older_generation_is_progressing() -> None:
    status = operator_status("Succeeded", "Applied", "done", 4)
    obj = {"kind": "Migration", "metadata": {"name": "m", "generation": 5}, "status": status}
    assert run_health(obj)["status"] == "Progressing"


def test_argocd_cm_patch_carries_the_script_for_each_kind() -> None:
    """The registration example embeds copies of health.lua; they must not drift from it."""
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    prefix = "resource.customizations.health.kubemigrate.dev_"
    assert patch["data"] == {
        f"{prefix}{kind}": SCRIPT
        for kind in (
            "Migration",
            "MigrationSet",
            "DatabaseBackup",
            "DatabaseRestore",
            "DatabaseBackupSchedule",
        )
    }
