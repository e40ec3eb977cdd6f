"""Times in status are whole seconds; a retry's time is rounded up, never cutting a wait short."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from kubemigrate.controller.build.status import to_second, up_to_second


def test_a_fraction_rounds_up_and_a_whole_second_stays() -> None:
    moment = datetime(2026, 12, 4, 0, 0, 10, 1, tzinfo=UTC)
    assert up_to_second(moment) == datetime(2026, 12, 4, 0, 0, 11, tzinfo=UTC)
    assert to_second(moment) == datetime(2026, 12, 4, 0, 0, 10, tzinfo=UTC)
    whole = datetime(2026, 12, 4, 0, 0, 10, tzinfo=UTC)
    assert up_to_second(whole) == whole


def test_never_earlier_than_asked_in_any_zone() -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    for micro in (0, 1, 499_999, 999_999):
        moment = datetime(2026, 12, 4, 5, 30, 0, micro, tzinfo=east)
        kept = up_to_second(moment)
        assert kept >= moment and kept - moment < timedelta(seconds=1)
        assert kept.tzinfo == UTC and kept.microsecond == 0
