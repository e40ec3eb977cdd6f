"""The status of a Migration whose batched step is running: pure, from the engine's
``BatchProgress``."""

from __future__ import annotations

from datetime import UTC, datetime

from kubemigrate.engine import BatchProgress
from kubemigrate.models.migration import BatchProgressStatus, MigrationPhase, MigrationStatus

_REASONS = {"paused": "Paused", "lagging": "WaitingForReplicas"}


def batch_status(
    progress: BatchProgress, phase: MigrationPhase, verb: str, version: str
) -> MigrationStatus:
    """phase (Applying or RollingBack) with the step's progress in words and in
    ``batchProgress``."""
    running = "Applying" if phase is MigrationPhase.APPLYING else "RollingBack"
    reason = _REASONS.get(progress.state, running)
    return MigrationStatus(
        phase=phase,
        reason=reason,
        message=f"{verb} version {version}: {describe(progress)}",
        batch_progress=BatchProgressStatus(
            statement=progress.statement,
            state=progress.state,
            batches=progress.batches,
            rows_done=progress.rows,
            rows_estimate=progress.estimate,
            rows_per_second=None if progress.rate is None else round(progress.rate),
            eta_seconds=None if progress.eta_seconds is None else round(progress.eta_seconds),
            batch_size=progress.batch_size,
            updated_at=datetime.now(UTC).replace(microsecond=0),
        ),
    )


def describe(p: BatchProgress) -> str:
    """e.g. "statement 2, batch 12: 120000 of about 2000000 rows (6%), 35000 rows/s, ETA 54s"."""
    text = f"statement {p.statement}, batch {p.batches}: {p.rows} rows"
    if p.estimate:
        text = f"{text[:-5]} of about {p.estimate} rows ({100 * p.rows // p.estimate}%)"
    if p.rate:
        text += f", {p.rate:.0f} rows/s"
    if p.eta_seconds is not None and p.state == "running":
        text += f", ETA {p.eta_seconds:.0f}s"
    if p.state == "paused":
        text += "; paused (spec.paused), set it false to resume"
    elif p.state == "lagging":
        text += f"; waiting: {p.detail}"
    return text
