"""How a Migration's step ends, written once for the flow and its helpers (preflight, the
restore point): waiting in the queue, a failure time may cure, a failure only a change of spec
cures, and settling, which wakes the next migration of its database."""

from __future__ import annotations

import dataclasses
from typing import Any

from kubemigrate.controller.build.status import MAX_MESSAGE, merged
from kubemigrate.controller.flows.base import StatusWriter
from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.ordering.migrations import Blocker, PeerIndex, next_up, peer_of
from kubemigrate.models.common import LastError
from kubemigrate.models.migration import MigrationPhase, MigrationStatus

PLURAL = "migrations"
IDLE = 300.0
"""How long a settled migration sleeps; spec changes and Job events wake it sooner."""
QUEUED = 30.0
"""How long a queued migration sleeps before it looks again, unless woken."""
RELOOK = 1.0
"""How soon a migration whose waiting message just changed looks again: the one it waits for
may change phase while the message is written, before the index holds the new waitingFor that
would have woken it (see `runtime.on_migration_event`)."""
IN_PROGRESS = frozenset(
    {
        MigrationPhase.PREFLIGHT,
        MigrationPhase.BACKING_UP,
        MigrationPhase.APPLYING,
        MigrationPhase.ROLLING_BACK,
    }
)


class MigrationStatusWriter(StatusWriter[MigrationStatus]):
    """One Migration's status writes; its backoff and its database's queue (kopf's index)."""

    def __init__(self, backoff: Backoff, index: PeerIndex) -> None:
        super().__init__(PLURAL, MigrationStatus)
        self.backoff, self.index = backoff, index

    def complete(self, change: MigrationStatus) -> MigrationStatus:
        """A phase change clears waitingFor unless it says what the migration waits for."""
        if "waiting_for" in change.model_fields_set:
            return change
        cleared = change.model_copy()
        cleared.waiting_for = None
        return cleared

    async def wait(self, obj: dict[str, Any], blocker: Blocker, ctx: StepContext) -> float:
        """Show why the migration waits (Pending) or cannot go on (Failed), once; look again
        soon after a change (RELOOK), else after QUEUED unless woken."""
        current = self.current(obj)
        generation = obj["metadata"]["generation"]
        phase = (
            MigrationPhase.FAILED
            if blocker.permanent or blocker.reason == "RollbackBlocked"
            else MigrationPhase.PENDING
        )
        if (current.phase, current.reason, current.message, current.observed_generation) != (
            phase,
            blocker.reason,
            blocker.message,
            generation,
        ):
            await self.write(
                obj,
                ctx,
                MigrationStatus(
                    phase=phase,
                    reason=blocker.reason,
                    message=blocker.message,
                    waiting_for=blocker.waiting_for,
                ),
            )
            if phase is MigrationPhase.FAILED:
                ctx.emit("Warning", blocker.reason, blocker.message)
            return RELOOK
        return QUEUED

    async def transient(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        ctx: StepContext,
        fields: MigrationStatus | None = None,
        *,
        note: str = "",
    ) -> float:
        """A failure that time may cure: Reconciling with backoff, never Stalled. fields go
        along; note goes before the delay in the message's parenthesis."""
        current = self.current(obj)
        delay = self.backoff.next()
        phase = current.phase if current.phase in IN_PROGRESS else MigrationPhase.PENDING
        change = MigrationStatus(
            phase=phase, reason=reason, message=f"{message} ({note}retrying in {delay:.0f}s)"
        )
        await self.write(obj, ctx, change if fields is None else merged(change, fields))
        ctx.emit("Warning", reason, message)
        ctx.logger.warning("%s: %s; retrying in %.0fs", reason, message, delay)
        return delay

    async def refused(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        ctx: StepContext,
        fields: MigrationStatus | None = None,
        *,
        retry: MigrationStatus | None = None,
    ) -> float:
        """The database refused the login, or the Secret's value is no PostgreSQL URL: a fix
        of the Secret cures it, not time, and every retry is one more failed login (lock-outs,
        alerts). Retried with backoff and counted in status.failedLogins; at the operator's
        loginAttempts in a row, Failed and Stalled. fields go along either way, retry only
        with a retry."""
        count = (self.current(obj).failed_logins or 0) + 1
        limit = ctx.settings.login_attempts
        counted = MigrationStatus(failed_logins=count)
        counted = counted if fields is None else merged(fields, counted)
        if count < limit:
            note = f"attempt {count} of {limit}; "
            again = counted if retry is None else merged(counted, retry)
            return await self.transient(obj, reason, message, ctx, again, note=note)
        ref = peer_of(obj).database
        return await self.failed(
            obj,
            reason,
            f"{message} ({count} attempts in a row; fix Secret {ref.secret} key {ref.key}, then "
            "change the spec to try again)",
            ctx,
            counted,
        )

    async def failed(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        ctx: StepContext,
        fields: MigrationStatus | None = None,
    ) -> float:
        """A failure only a change of spec cures: Failed and Stalled. fields go along (their
        phase, reason and message do not); without a lastError among them, the message is the
        lastError."""
        change = MigrationStatus(phase=MigrationPhase.FAILED, reason=reason, message=message)
        if fields is not None:
            change = merged(fields, change)
        if "last_error" not in change.model_fields_set:
            change.last_error = LastError(message=message[:MAX_MESSAGE])
        await self.write(obj, ctx, change)
        ctx.emit("Warning", reason, message)
        return self.settled(obj, ctx, MigrationPhase.FAILED)

    def settled(self, obj: dict[str, Any], ctx: StepContext, phase: MigrationPhase) -> float:
        """The migration reached phase for its spec: wake whoever is next in its database."""
        me = dataclasses.replace(peer_of(obj), phase=phase, settled=True)
        others = [p for p in self.index.get(me.database, ()) if p.uid != me.uid]
        for peer in next_up([*others, me]):
            ctx.wake(peer.uid)
        return IDLE
