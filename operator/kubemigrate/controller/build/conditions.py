"""kstatus conditions: `Ready`, `Reconciling` and `Stalled`, built from a phase.

Flux, Argo CD and `kubectl wait --for=condition=Ready` read health from these three without
custom code (sigs.k8s.io/cli-utils kstatus): Reconciling=True while work is under way,
Stalled=True when progress needs a change of spec, Ready=True when the desired state is reached.
Each condition carries the generation it describes, and keeps its lastTransitionTime while its
status does not change.

DatabaseBackup and DatabaseRestore have the phases Pending, Running, Succeeded and Failed, which
read as Migration's phases of the same names do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from kubemigrate.models.common import Condition, ConditionStatus
from kubemigrate.models.migration import MigrationPhase

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"

#: phases in which the resource has reached what its spec asks for
DONE_PHASES: frozenset[str] = frozenset(
    {MigrationPhase.SUCCEEDED, MigrationPhase.ROLLED_BACK, MigrationPhase.DRY_RUN_SUCCEEDED}
)
#: phases that only a change of spec gets out of
STALLED_PHASES: frozenset[str] = frozenset({MigrationPhase.FAILED, "Halted"})
"""Halted: a fleet rollout past its maxFailures, until the spec changes."""


@dataclass(frozen=True)
class Health:
    """What the conditions say, before they are rendered."""

    ready: bool
    reconciling: bool
    stalled: bool
    reason: str
    message: str


def health(phase: str, reason: str, message: str) -> Health:
    """The kstatus reading of a phase."""
    if phase in DONE_PHASES:
        return Health(True, False, False, reason, message)
    if phase in STALLED_PHASES:
        return Health(False, False, True, reason, message)
    return Health(False, True, False, reason, message)


def _condition(
    ctype: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
    previous: Mapping[str, Condition],
) -> Condition:
    value = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    before = previous.get(ctype)
    since = before.last_transition_time if before is not None and before.status == value else now
    return Condition(
        type=ctype,
        status=value,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=since,
    )


def build_conditions(
    h: Health, generation: int, now: datetime, previous: Sequence[Condition] = ()
) -> list[Condition]:
    """Ready, Reconciling and Stalled for h; other condition types in previous are kept."""
    before = {c.type: c for c in previous}

    def cond(ctype: str, status: bool, reason: str, message: str) -> Condition:
        return _condition(
            ctype, status, reason, message, generation=generation, now=now, previous=before
        )

    ours = [
        cond(READY, h.ready, h.reason, h.message),
        cond(
            RECONCILING,
            h.reconciling,
            h.reason if h.reconciling else "Idle",
            h.message if h.reconciling else "",
        ),
        cond(
            STALLED,
            h.stalled,
            h.reason if h.stalled else "Progressing",
            h.message if h.stalled else "",
        ),
    ]
    others = [c for c in previous if c.type not in {READY, RECONCILING, STALLED}]
    return ours + others
