"""A cron expression read in an IANA time zone: the times it fires, as UTC datetimes.

cronsim does the calendar arithmetic. For five-field expressions at fixed hours it follows
Debian cron (and CronJob) across daylight-saving changes: a time that does not exist that day
fires once right after the change, a time that happens twice fires once (the first time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from kubemigrate.models.schedule import expand, seconds_field


class InvalidSchedule(ValueError):
    """The expression or time zone cannot be scheduled; reason is a CamelCase word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Cron:
    """One schedule: its fields (macros expanded) and its zone."""

    fields: str
    zone: ZoneInfo

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The fire times strictly after moment, in order, in UTC."""
        # cronsim stops after 50 years without a match (e.g. 30 February), ending the loop.
        for fire in CronSim(self.fields, moment.astimezone(self.zone)):
            yield fire.astimezone(UTC)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after moment."""
        return next(self.after(moment), None)

    def latest_until(self, moment: datetime) -> datetime | None:
        """The last fire time at or before moment."""
        start = (moment.replace(microsecond=0) + timedelta(seconds=1)).astimezone(self.zone)
        try:
            return next(iter(CronSim(self.fields, start, reverse=True))).astimezone(UTC)
        except StopIteration:
            return None


def parse(expression: str, zone: str, *, seconds_allowed: bool = False) -> Cron:
    """A Cron, or InvalidSchedule saying why not."""
    if seconds_field(expression) and not seconds_allowed:
        raise InvalidSchedule(
            "SecondsNotEnabled",
            "a six-field schedule (with seconds) needs the operator's "
            "KUBEMIGRATE_SCHEDULE_SECONDS=true (meant for tests and demos)",
        )
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule("InvalidTimeZone", f"unknown time zone {zone!r}") from exc
    fields = expand(expression)
    try:
        CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:
        raise InvalidSchedule(
            "InvalidSchedule", f"invalid cron expression {expression!r}: {exc}"
        ) from exc
    return Cron(fields, tz)
