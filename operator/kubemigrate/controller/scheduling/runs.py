"""Which scheduled run to start now, following CronJob's controller.

- The runs missed are the fire times after the last scheduled time (the schedule's creation
  when there is none) up to now. With startingDeadlineSeconds, only those within the deadline
  count: an older one can no longer start. More than 100 missed times are reported (an
  operator outage, a stopped clock) but change nothing else.
- Only the most recent missed run is started; the older ones are gone.
- Concurrency: Forbid starts nothing while a backup of the schedule is active, and does not
  record the run as scheduled, so it starts once the active one ends if still within the
  deadline; Replace deletes the active ones first; Allow starts it anyway (it queues behind the
  active one: DatabaseBackups of one database never run at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kubemigrate.controller.scheduling.cron import Cron
from kubemigrate.models.schedule import ConcurrencyPolicy

TOO_MANY = 100
"""CronJob's bound: past it the controller reports the missed times (and goes on)."""


@dataclass(frozen=True)
class Missed:
    """The scheduled times not yet started: the newest one, and how many (at most 101)."""

    latest: datetime | None
    count: int

    @property
    def too_many(self) -> bool:
        return self.count > TOO_MANY


def missed(cron: Cron, since: datetime, now: datetime) -> Missed:
    """Fire times in (since, now]."""
    count = 0
    for fire in cron.after(since):
        if fire > now:
            break
        count += 1
        if count > TOO_MANY:
            break
    if count == 0:
        return Missed(None, 0)
    return Missed(cron.latest_until(now), count)


def earliest(
    created: datetime, last_scheduled: datetime | None, now: datetime, deadline: int | None
) -> datetime:
    """Where missed runs are counted from: the last scheduled time (else the creation),
    or now minus the starting deadline if that is later."""
    start = last_scheduled or created
    if deadline is not None:
        start = max(start, now - timedelta(seconds=deadline))
    return start


def too_late(
    cron: Cron,
    created: datetime,
    last_scheduled: datetime | None,
    now: datetime,
    deadline: int | None,
) -> datetime | None:
    """The newest fire time that was missed and is past its starting deadline now (never
    started: the operator was down, the schedule suspended, or Forbid held it back)."""
    if deadline is None:
        return None
    cutoff = now - timedelta(seconds=deadline)
    latest = cron.latest_until(cutoff)
    if latest is None or latest <= (last_scheduled or created):
        return None
    return latest


@dataclass(frozen=True)
class Plan:
    """What a step does at `now`."""

    start: datetime | None = None
    """The scheduled time of the backup to create now, if any."""
    replace: tuple[str, ...] = ()
    """Active backups to delete first (Replace)."""
    held: datetime | None = None
    """A due run not started because a backup is still active (Forbid)."""
    missed: Missed = field(default_factory=lambda: Missed(None, 0))
    too_late: datetime | None = None
    next_run: datetime | None = None


@dataclass(frozen=True)
class State:
    """What the schedule's object and its backups say."""

    created: datetime
    last_scheduled: datetime | None
    deadline: int | None
    suspend: bool
    policy: ConcurrencyPolicy
    active: Sequence[str]


def plan(cron: Cron, state: State, now: datetime) -> Plan:
    """The decision of one step at now."""
    late = too_late(cron, state.created, state.last_scheduled, now, state.deadline)
    if state.suspend:
        return Plan(too_late=late)
    due = missed(cron, earliest(state.created, state.last_scheduled, now, state.deadline), now)
    upcoming = cron.next_after(now)
    if due.latest is None:
        return Plan(missed=due, too_late=late, next_run=upcoming)
    if state.active and state.policy is ConcurrencyPolicy.FORBID:
        return Plan(held=due.latest, missed=due, too_late=late, next_run=upcoming)
    replace = tuple(state.active) if state.policy is ConcurrencyPolicy.REPLACE else ()
    return Plan(start=due.latest, replace=replace, missed=due, too_late=late, next_run=upcoming)
