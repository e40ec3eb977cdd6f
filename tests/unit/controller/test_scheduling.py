"""The pure scheduling core: cron times in a time zone (across daylight-saving changes), missed
runs, the starting deadline, more than 100 missed times, concurrency, history limits, names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubemigrate.controller.build.scheduled_backup import backup_manifest, backup_name
from kubemigrate.controller.scheduling.cron import InvalidSchedule, parse
from kubemigrate.controller.scheduling.history import SCHEDULED_AT, Child, children, to_prune
from kubemigrate.controller.scheduling.runs import State, missed, plan, too_late
from kubemigrate.models.schedule import ConcurrencyPolicy, DatabaseBackupScheduleSpec


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def state(
    created: datetime,
    last: datetime | None = None,
    *,
    deadline: int | None = None,
    suspend: bool = False,
    policy: ConcurrencyPolicy = ConcurrencyPolicy.FORBID,
    active: tuple[str, ...] = (),
) -> State:
    return State(created, last, deadline, suspend, policy, active)


# -- cron times ----------------------------------------------------------------------------


def test_next_fire_time_is_read_in_the_time_zone() -> None:
    cron = parse("30 2 * * *", "America/New_York")
    # 2026-01-10 is winter (EST, UTC-5): 02:30 local is 07:30 UTC.
    assert cron.next_after(utc(2026, 1, 10, 0, 0)) == utc(2026, 1, 10, 7, 30)
    assert cron.next_after(utc(2026, 1, 10, 7, 30)) == utc(2026, 1, 11, 7, 30)


def test_a_time_skipped_by_spring_forward_runs_once_right_after_the_change() -> None:
    # Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    cron = parse("30 2 * * *", "Europe/Berlin")
    fires = list(_take(cron.after(utc(2026, 3, 27, 12, 0)), 3))
    assert fires == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, the first minute that exists
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_a_time_repeated_by_fall_back_runs_once() -> None:
    # Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    cron = parse("30 2 * * *", "Europe/Berlin")
    fires = list(_take(cron.after(utc(2026, 10, 24, 12, 0)), 2))
    assert fires == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_hourly_fires_every_real_hour_across_fall_back() -> None:
    cron = parse("@hourly", "Europe/Berlin")
    fires = list(_take(cron.after(utc(2026, 10, 24, 23, 30)), 4))
    # 02:00 CEST (00:00Z), 02:00 CET (01:00Z) and 03:00 CET (02:00Z) are three real hours.
    assert fires == [utc(2026, 10, 25, h) for h in range(4)]


def test_latest_until_includes_the_moment_itself() -> None:
    cron = parse("0 * * * *", "Etc/UTC")
    assert cron.latest_until(utc(2026, 1, 1, 5, 0)) == utc(2026, 1, 1, 5, 0)
    assert cron.latest_until(utc(2026, 1, 1, 5, 59, 59)) == utc(2026, 1, 1, 5, 0)


@pytest.mark.parametrize(
    ("expression", "zone", "reason"),
    [
        ("61 * * * *", "Etc/UTC", "InvalidSchedule"),
        ("* * * *", "Etc/UTC", "InvalidSchedule"),
        ("0 3 * * *", "Mars/Olympus", "InvalidTimeZone"),
        ("*/5 * * * * *", "Etc/UTC", "SecondsNotEnabled"),
    ],
)
def test_what_cannot_be_scheduled_says_why(expression: str, zone: str, reason: str) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse(expression, zone)
    assert caught.value.reason == reason


def test_seconds_are_accepted_when_the_operator_enables_them() -> None:
    cron = parse("*/5 * * * * *", "Etc/UTC", seconds_allowed=True)
    assert cron.next_after(utc(2026, 1, 1, 0, 0, 1)) == utc(2026, 1, 1, 0, 0, 5)


# -- missed runs and the deadline ------------------------------------------------------------


def test_nothing_is_due_before_the_first_fire_time() -> None:
    cron = parse("0 3 * * *", "Etc/UTC")
    p = plan(cron, state(utc(2026, 1, 1, 1)), utc(2026, 1, 1, 2, 59))
    assert p.start is None
    assert p.next_run == utc(2026, 1, 1, 3)


def test_a_due_run_starts_with_its_scheduled_time() -> None:
    cron = parse("0 3 * * *", "Etc/UTC")
    p = plan(cron, state(utc(2026, 1, 1, 1)), utc(2026, 1, 1, 3, 0, 2))
    assert p.start == utc(2026, 1, 1, 3)
    assert p.next_run == utc(2026, 1, 2, 3)


def test_after_an_outage_only_the_most_recent_missed_run_starts() -> None:
    cron = parse("0 * * * *", "Etc/UTC")
    last = utc(2026, 1, 1, 0)
    p = plan(cron, state(utc(2025, 12, 31), last), utc(2026, 1, 1, 5, 30))
    assert p.missed.count == 5 and not p.missed.too_many
    assert p.start == utc(2026, 1, 1, 5)


def test_a_missed_run_past_the_starting_deadline_is_skipped_and_reported() -> None:
    cron = parse("0 * * * *", "Etc/UTC")
    last = utc(2026, 1, 1, 0)
    p = plan(cron, state(utc(2025, 12, 31), last, deadline=600), utc(2026, 1, 1, 5, 30))
    assert p.start is None
    assert p.too_late == utc(2026, 1, 1, 5)
    assert p.next_run == utc(2026, 1, 1, 6)


def test_a_missed_run_within_the_starting_deadline_starts_late() -> None:
    cron = parse("0 * * * *", "Etc/UTC")
    last = utc(2026, 1, 1, 0)
    p = plan(cron, state(utc(2025, 12, 31), last, deadline=3600), utc(2026, 1, 1, 5, 30))
    assert p.start == utc(2026, 1, 1, 5)
    assert p.too_late == utc(2026, 1, 1, 4)  # older ones were lost, and that is reported


def test_more_than_100_missed_times_are_reported_and_the_latest_still_starts() -> None:
    cron = parse("* * * * *", "Etc/UTC")
    last = utc(2026, 1, 1, 0)
    now = utc(2026, 1, 1, 3, 0, 30)  # 180 minutes later
    p = plan(cron, state(utc(2025, 12, 31), last), now)
    assert p.missed.too_many
    assert p.start == utc(2026, 1, 1, 3, 0)


def test_exactly_100_missed_times_are_not_too_many() -> None:
    cron = parse("* * * * *", "Etc/UTC")
    m = missed(cron, utc(2026, 1, 1, 0), utc(2026, 1, 1, 1, 40))
    assert m.count == 100 and not m.too_many


def test_a_deadline_bounds_the_count_of_missed_times() -> None:
    cron = parse("* * * * *", "Etc/UTC")
    p = plan(cron, state(utc(2025, 12, 31), utc(2026, 1, 1), deadline=300), utc(2026, 1, 2))
    assert not p.missed.too_many and p.missed.count == 5
    assert p.start == utc(2026, 1, 2)


def test_a_new_schedule_counts_from_its_creation() -> None:
    cron = parse("0 3 * * *", "Etc/UTC")
    created = utc(2026, 1, 1, 3, 30)
    assert plan(cron, state(created), utc(2026, 1, 1, 12)).start is None
    assert too_late(cron, created, None, utc(2026, 1, 5), None) is None


# -- suspend and concurrency -------------------------------------------------------------------


def test_suspended_starts_nothing_and_has_no_next_run() -> None:
    cron = parse("0 3 * * *", "Etc/UTC")
    p = plan(cron, state(utc(2026, 1, 1), suspend=True), utc(2026, 1, 1, 3, 0, 1))
    assert p.start is None and p.next_run is None


def test_unsuspended_follows_the_deadline_rule_for_what_it_missed() -> None:
    cron = parse("0 3 * * *", "Etc/UTC")
    last = utc(2026, 1, 1, 3)
    late = plan(cron, state(utc(2025, 12, 1), last, deadline=60), utc(2026, 1, 4, 12))
    assert late.start is None and late.too_late == utc(2026, 1, 4, 3)
    anyway = plan(cron, state(utc(2025, 12, 1), last), utc(2026, 1, 4, 12))
    assert anyway.start == utc(2026, 1, 4, 3)


def test_forbid_holds_the_run_while_one_is_active() -> None:
    cron = parse("0 3 * * *", "Etc/UTC")
    s = state(utc(2026, 1, 1), active=("nightly-1",))
    p = plan(cron, s, utc(2026, 1, 1, 3, 0, 1))
    assert p.start is None and p.held == utc(2026, 1, 1, 3)


def test_replace_deletes_the_active_one_first() -> None:
    cron = parse("0 3 * * *", "Etc/UTC")
    s = state(utc(2026, 1, 1), policy=ConcurrencyPolicy.REPLACE, active=("nightly-1",))
    p = plan(cron, s, utc(2026, 1, 1, 3, 0, 1))
    assert p.start == utc(2026, 1, 1, 3) and p.replace == ("nightly-1",)


def test_allow_starts_it_anyway() -> None:
    cron = parse("0 3 * * *", "Etc/UTC")
    s = state(utc(2026, 1, 1), policy=ConcurrencyPolicy.ALLOW, active=("nightly-1",))
    p = plan(cron, s, utc(2026, 1, 1, 3, 0, 1))
    assert p.start == utc(2026, 1, 1, 3) and p.replace == ()


# -- history and names -------------------------------------------------------------------------


def kid(name: str, phase: str | None, minute: int) -> Child:
    return Child(name, phase, utc(2026, 1, 1, 0, minute), None)


def test_history_limits_delete_the_oldest_finished_ones() -> None:
    kids = [
        kid("a", "Succeeded", 1),
        kid("b", "Failed", 2),
        kid("c", "Succeeded", 3),
        kid("d", "Failed", 4),
        kid("e", "Succeeded", 5),
        kid("f", "Running", 6),
    ]
    assert to_prune(kids, keep_succeeded=2, keep_failed=1) == ["a", "b"]
    assert to_prune(kids, keep_succeeded=1, keep_failed=0) == ["a", "b", "c", "d"]


def test_children_are_only_the_schedules_own_in_scheduled_order() -> None:
    def body(name: str, uid: str, at: str) -> dict[str, object]:
        return {
            "metadata": {
                "name": name,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "annotations": {SCHEDULED_AT: at},
                "ownerReferences": [{"uid": uid, "controller": True}],
            },
            "status": {"phase": "Succeeded"},
        }

    found = children(
        "me",
        [
            body("late", "me", "2026-01-01T02:00:00Z"),
            body("other", "someone", "2026-01-01T01:00:00Z"),
            body("early", "me", "2026-01-01T01:00:00Z"),
        ],
    )
    assert [c.name for c in found] == ["early", "late"]


def test_backup_names_are_deterministic_and_fit_a_label() -> None:
    at = utc(2026, 1, 1, 3)
    assert backup_name("nightly", at) == f"nightly-{int(at.timestamp())}"
    long_a, long_b = "x" * 60 + "a", "x" * 60 + "b"
    assert len(backup_name(long_a, at)) <= 63
    assert backup_name(long_a, at) != backup_name(long_b, at)
    assert backup_name(long_a, at) == backup_name(long_a, at)


def test_the_backup_is_the_template_owned_by_the_schedule() -> None:
    spec = DatabaseBackupScheduleSpec.model_validate(
        {
            "schedule": "@daily",
            "backupTemplate": {
                "labels": {"team": "orders", "kubemigrate.dev/schedule": "spoofed"},
                "spec": {
                    "database": {"secretRef": {"name": "db"}},
                    "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
                    "retention": {"ttl": "168h"},
                },
            },
        }
    )
    obj = {"metadata": {"name": "nightly", "namespace": "prod", "uid": "u1", "generation": 2}}
    m = backup_manifest(obj, spec, utc(2026, 1, 1))
    assert m["kind"] == "DatabaseBackup"
    assert m["metadata"]["labels"]["team"] == "orders"
    assert m["metadata"]["labels"]["kubemigrate.dev/schedule"] == "nightly"
    assert m["metadata"]["annotations"][SCHEDULED_AT] == "2026-01-01T00:00:00Z"
    (ref,) = m["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("DatabaseBackupSchedule", "u1", True)
    assert m["spec"]["database"] == {"secretRef": {"name": "db", "key": "url"}}
    assert m["spec"]["retention"] == {"ttl": "168h"}


def _take(it: object, n: int) -> list[datetime]:
    out = []
    for value in it:  # type: ignore[attr-defined]
        out.append(value)
        if len(out) == n:
            break
    return out


def test_fire_times_are_whole_seconds() -> None:
    cron = parse("*/15 * * * *", "Asia/Kolkata")
    fire = cron.next_after(utc(2026, 1, 1, 0, 7, 12) + timedelta(microseconds=5))
    assert fire == utc(2026, 1, 1, 0, 15)
