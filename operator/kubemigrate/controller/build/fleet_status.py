"""Pure: a fleet rollout's state, folded from its waves' ledgers.

Each wave's ledger says which of its targets succeeded, failed or are running; a target run
again in a later wave takes that wave's outcome. From that come the status counts, the first
failed targets, the version most targets are at, and the targets a new wave must still take.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kubemigrate import fleetledger
from kubemigrate.models.fleet import MAX_FAILED_TARGETS, FailedTarget, TargetCounts


@dataclass(frozen=True)
class WaveView:
    """One wave as read from the cluster: its targets and its ledger."""

    number: int
    targets: Sequence[str]
    ledger: fleetledger.Ledger
    generation: int
    closed: bool


@dataclass(frozen=True)
class Fold:
    """Every target's latest outcome over the rollout's waves."""

    succeeded: frozenset[str]
    failed: dict[str, int]
    """Failed target -> the set's generation when the wave it failed in started."""
    running: frozenset[str]
    errors: tuple[FailedTarget, ...]
    version: str | None

    def counts(self, resolved: Sequence[str]) -> TargetCounts:
        """Counts over the targets resolved now (a target gone from the selector drops out)."""
        names = set(resolved)
        succeeded = len(names & self.succeeded)
        failed = len(names & set(self.failed))
        running = len(names & self.running)
        return TargetCounts(
            total=len(names),
            succeeded=succeeded,
            failed=failed,
            running=running,
            pending=len(names) - succeeded - failed - running,
        )


def fold(waves: Sequence[WaveView]) -> Fold:
    """The latest outcome of every target, waves taken in order."""
    outcome: dict[str, tuple[str, int]] = {}
    reasons: dict[str, FailedTarget] = {}
    versions: Counter[str] = Counter()
    for wave in sorted(waves, key=lambda w: w.number):
        names = wave.targets
        for index in sorted(wave.ledger.succeeded | wave.ledger.failed | wave.ledger.running):
            if index >= len(names):
                continue
            state = (
                "succeeded"
                if index in wave.ledger.succeeded
                else "failed"
                if index in wave.ledger.failed
                else "running"
            )
            if state == "running" and wave.closed:
                continue  # a worker that died holding it: not done, taken by a later wave
            outcome[names[index]] = (state, wave.generation)
        for error in wave.ledger.errors:
            reasons[error.name] = FailedTarget(
                name=error.name,
                version=error.version,
                sqlstate=error.sqlstate,
                message=error.message,
            )
        versions.update({v: n for v, n in wave.ledger.versions.items() if v})
    failed = {n: w for n, (s, w) in outcome.items() if s == "failed"}
    listed = [reasons.get(n) or FailedTarget(name=n, message="failed") for n in sorted(failed)]
    return Fold(
        succeeded=frozenset(n for n, (s, _) in outcome.items() if s == "succeeded"),
        failed=failed,
        running=frozenset(n for n, (s, _) in outcome.items() if s == "running"),
        errors=tuple(listed[:MAX_FAILED_TARGETS]),
        version=versions.most_common(1)[0][0] if versions else None,
    )


def remaining(resolved: Sequence[str], done: Fold, generation: int) -> list[str]:
    """The targets a new wave takes: not succeeded, not running, and a failed one only once the
    spec changed after it failed (a fix is announced by bumping the spec)."""
    return [
        name
        for name in resolved
        if name not in done.succeeded
        and name not in done.running
        and done.failed.get(name, -1) < generation
    ]
