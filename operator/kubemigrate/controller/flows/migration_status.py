"""How a Migration's step ends, written once for the flow and its helpers (preflight, the
restore point): waiting in the queue, a failure time may cure, a failure only a change of spec
cures, and settling, which wakes the next migration of its database.

A failure time may cure is retried with exponential backoff whose state lives in status
(`failedAttempts`, `nextAttemptAt`), not in memory: a wake-up (a Job's deletion, a spec-less
event) or a restarted operator cannot cut the wait short. Such a failure is posted as an Event on
its first attempt, when its message changes, and every tenth attempt, never once per attempt.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from kubemigrate.controller.build.status import MAX_MESSAGE, merged, up_to_second
from kubemigrate.controller.flows.base import HasApi, StatusWriter
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
SETTLED_PHASES = frozenset(
    {
        MigrationPhase.SUCCEEDED,
        MigrationPhase.ROLLED_BACK,
        MigrationPhase.DRY_RUN_SUCCEEDED,
        MigrationPhase.FAILED,
    }
)
EVENT_EVERY = 10
"""A repeating failure's Event is posted again every this many attempts (with the count)."""


class MigrationStatusWriter(StatusWriter[MigrationStatus]):
    """One Migration's status writes; its backoff and its database's queue (kopf's index)."""

    def __init__(self, backoff: Backoff, index: PeerIndex) -> None:
        super().__init__(PLURAL, MigrationStatus)
        self.backoff, self.index = backoff, index
        self._reported: tuple[str, str] | None = None

    def complete(self, change: MigrationStatus) -> MigrationStatus:
        """A phase change clears waitingFor unless it says what the migration waits for, and
        nextAttemptAt unless it schedules a retry."""
        given = change.model_fields_set
        if {"waiting_for", "next_attempt_at"} <= given:
            return change
        cleared = change.model_copy()
        if "waiting_for" not in given:
            cleared.waiting_for = None
        if "next_attempt_at" not in given:
            cleared.next_attempt_at = None
        return cleared

    async def write(self, obj: dict[str, Any], ctx: HasApi, change: MigrationStatus) -> None:
        """As every kind writes, and the count of failed attempts starts again when the spec
        changed or the migration settled."""
        current = self.current(obj)
        fresh = current.observed_generation != obj["metadata"].get("generation", 1)
        if (
            current.failed_attempts is not None
            and "failed_attempts" not in change.model_fields_set
            and (fresh or change.phase in SETTLED_PHASES)
        ):
            change = change.model_copy()
            change.failed_attempts = None
            self._reported = None
        await super().write(obj, ctx, change)

    def until_next_attempt(self, obj: dict[str, Any]) -> float:
        """Seconds until a scheduled retry of this generation is due (0 or less: due now)."""
        current = self.current(obj)
        if current.next_attempt_at is None or current.observed_generation != obj["metadata"].get(
            "generation", 1
        ):
            return 0.0
        return (current.next_attempt_at - datetime.now(UTC)).total_seconds()

    async def retry(
        self, obj: dict[str, Any], ctx: StepContext, change: MigrationStatus, *, note: str = ""
    ) -> float:
        """A failure time may cure: change (phase, reason, message and what else it sets)
        with the attempt count and the time of the next attempt; returns the delay. note
        replaces the attempt count in the message's parenthesis."""
        current = self.current(obj)
        same = current.observed_generation == obj["metadata"].get("generation", 1)
        attempt = ((current.failed_attempts or 0) if same else 0) + 1
        delay = self.backoff.delay(attempt - 1)
        reason, message = change.reason or "Retrying", change.message or ""
        scheduled = change.model_copy()
        note = note or f"attempt {attempt}; "
        scheduled.message = f"{message} ({note}retrying in {delay:.0f}s)"
        scheduled.failed_attempts = attempt
        scheduled.next_attempt_at = up_to_second(datetime.now(UTC) + timedelta(seconds=delay))
        await self.write(obj, ctx, scheduled)
        if (reason, message) != self._reported or attempt % EVENT_EVERY == 0:
            self._reported = (reason, message)
            ctx.emit(
                "Warning", reason, message if attempt == 1 else f"{message} (attempt {attempt})"
            )
        ctx.logger.warning("%s: %s; attempt %d, retrying in %.0fs", reason, message, attempt, delay)
        return delay

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
        phase = current.phase if current.phase in IN_PROGRESS else MigrationPhase.PENDING
        change = MigrationStatus(phase=phase, reason=reason, message=message)
        return await self.retry(
            obj, ctx, change if fields is None else merged(change, fields), note=note
        )

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
