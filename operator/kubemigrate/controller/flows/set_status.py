"""How a MigrationSet's step ends: a failure time may cure (retried with a backoff kept in
status), a failure only a change cures (Failed, Stalled), or a settled run. Events are posted
once per change of reason and message, not once per look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubemigrate.controller.build.status import merged, up_to_second
from kubemigrate.controller.flows.base import StatusWriter
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.models.migration_set import MigrationSetPhase, MigrationSetStatus, SetError

PLURAL = "migrationsets"
RESYNC = 30.0
"""How often a settled set reads its ConfigMaps again: a changed file starts a run (or is
refused as drift) without any change to the set itself."""
IN_PROGRESS = frozenset(
    {
        MigrationSetPhase.PREFLIGHT,
        MigrationSetPhase.BACKING_UP,
        MigrationSetPhase.APPLYING,
        MigrationSetPhase.ROLLING_BACK,
    }
)


class SetStatusWriter(StatusWriter[MigrationSetStatus]):
    """One MigrationSet's status writes, and its backoff."""

    def __init__(self, backoff: Backoff) -> None:
        super().__init__(PLURAL, MigrationSetStatus)
        self.backoff = backoff

    def complete(self, change: MigrationSetStatus) -> MigrationSetStatus:
        """A write that schedules no retry clears the schedule."""
        if "next_attempt_at" in change.model_fields_set:
            return change
        cleared = change.model_copy()
        cleared.next_attempt_at = None
        if "failed_attempts" not in change.model_fields_set:
            cleared.failed_attempts = None
        return cleared

    def until_next_attempt(self, obj: dict[str, Any]) -> float:
        current = self.current(obj)
        if current.next_attempt_at is None:
            return 0.0
        return (current.next_attempt_at - datetime.now(UTC)).total_seconds()

    def unchanged(
        self, obj: dict[str, Any], phase: MigrationSetPhase, reason: str, key: str
    ) -> bool:
        """Whether status already says this, for this spec and run: nothing to write or post."""
        current = self.current(obj)
        return (current.phase, current.reason, current.run_key, current.observed_generation) == (
            phase,
            reason,
            key,
            obj["metadata"].get("generation", 1),
        )

    async def transient(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        ctx: StepContext,
        fields: MigrationSetStatus | None = None,
    ) -> float:
        """Reconciling, retried after a backoff that doubles per attempt (kept in status)."""
        current = self.current(obj)
        attempt = (current.failed_attempts or 0) + 1
        delay = self.backoff.delay(attempt - 1)
        phase = current.phase if current.phase in IN_PROGRESS else MigrationSetPhase.PENDING
        change = MigrationSetStatus(
            phase=phase,
            reason=reason,
            message=f"{message} (attempt {attempt}; retrying in {delay:.0f}s)",
            failed_attempts=attempt,
            next_attempt_at=up_to_second(datetime.now(UTC) + timedelta(seconds=delay)),
        )
        await self.write(obj, ctx, change if fields is None else merged(fields, change))
        if attempt == 1 or attempt % 10 == 0:
            ctx.emit("Warning", reason, message)
        return delay

    async def failed(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        ctx: StepContext,
        fields: MigrationSetStatus | None = None,
    ) -> float:
        """Failed and Stalled until the source or the spec changes."""
        change = MigrationSetStatus(phase=MigrationSetPhase.FAILED, reason=reason, message=message)
        if fields is not None:
            change = merged(fields, change)
        if "last_error" not in change.model_fields_set:
            change.last_error = SetError(message=message[:1024])
        await self.write(obj, ctx, change)
        ctx.emit("Warning", reason, message)
        return RESYNC
