"""The DatabaseBackupSchedule model: the cron expression and time zone checked as the operator
reads them, and the template's schema without the DatabaseBackup's immutability rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from kubemigrate.models.schedule import DatabaseBackupSchedule, DatabaseBackupScheduleSpec


def spec(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schedule": "30 2 * * *",
        "backupTemplate": {
            "spec": {
                "database": {"secretRef": {"name": "db"}},
                "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
            }
        },
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    "cron", ["30 2 * * *", "@daily", "@hourly", "0 */6 * * MON-FRI", "*/5 * * * * *"]
)
def test_accepted(cron: str) -> None:
    DatabaseBackupScheduleSpec.model_validate(spec(schedule=cron))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule": "61 2 * * *"}, "invalid cron expression"),
        ({"schedule": "0 25 * * *"}, "invalid cron expression"),
        ({"schedule": "@fortnightly"}, "unknown macro"),
        ({"schedule": "TZ=UTC 0 3 * * *"}, "spec.timeZone"),
        ({"schedule": "0 3 * *"}, "should match pattern"),
        ({"timeZone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"successfulBackupsHistoryLimit": 0}, "greater than or equal to 1"),
    ],
)
def test_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DatabaseBackupScheduleSpec.model_validate(spec(**fields))
    assert message in str(caught.value)


def test_defaults_are_cronjobs() -> None:
    s = DatabaseBackupScheduleSpec.model_validate(spec())
    assert (s.concurrency_policy, s.suspend, s.starting_deadline_seconds) == ("Forbid", False, None)
    assert (s.successful_backups_history_limit, s.failed_backups_history_limit) == (3, 1)
    assert s.time_zone == "Etc/UTC"


def test_the_template_has_no_transition_rules_but_keeps_the_others() -> None:
    text = json.dumps(DatabaseBackupSchedule.model_json_schema(by_alias=True))
    assert "oldSelf" not in text
    assert "storage needs exactly one of" in text
