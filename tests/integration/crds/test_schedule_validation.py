"""The DatabaseBackupSchedule CRD on a real API server: what it refuses (with the message
`kubectl apply` prints), that a template may change where a DatabaseBackup may not, and that
what it stores parses back into the model."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from harness.kube import Kubectl
from harness.paths import REPO
from kubemigrate.models.schedule import DatabaseBackupSchedule

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]


def schedule(name: str = "s1", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schedule": "30 2 * * *",
        "backupTemplate": {
            "spec": {
                "database": {"secretRef": {"name": "db"}},
                "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
            }
        },
    }
    base.update(spec)
    return {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "DatabaseBackupSchedule",
        "metadata": {"name": name},
        "spec": base,
    }


def apply(kubectl: Kubectl, namespace: str, obj: dict[str, Any]) -> Any:
    return kubectl.apply(json.dumps(obj), "-n", namespace, check=False)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"schedule": "TZ=UTC 0 3 * * *"}, "set the time zone in spec.timeZone, not in schedule"),
        ({"schedule": "@fortnightly"}, "unknown macro; use one of @annually"),
        ({"schedule": "0 3 * *"}, "spec.schedule: Invalid value"),
        ({"timeZone": "../etc/passwd"}, "spec.timeZone: Invalid value"),
        ({"successfulBackupsHistoryLimit": 0}, "spec.successfulBackupsHistoryLimit"),
        ({"failedBackupsHistoryLimit": -1}, "spec.failedBackupsHistoryLimit"),
        ({"startingDeadlineSeconds": 0}, "spec.startingDeadlineSeconds"),
        ({"concurrencyPolicy": "Sometimes"}, 'supported values: "Forbid", "Replace", "Allow"'),
        ({"backupTemplate": {"spec": {"database": {"secretRef": {"name": "db"}}}}}, "storage"),
        ({"backupTemplate": {"spec": {}, "bogus": 1}}, "bogus"),
    ],
)
def test_refused_with_a_message(
    kubectl: Kubectl, namespace: str, spec: dict[str, Any], message: str
) -> None:
    proc = apply(kubectl, namespace, schedule(**spec))
    assert proc.returncode != 0, f"accepted, but should have been refused:\n{proc.stdout}"
    assert message in proc.stderr


def test_the_template_may_change_and_round_trips(kubectl: Kubectl, namespace: str) -> None:
    """A DatabaseBackup's database and storage are immutable; a template's are not."""
    first = schedule(schedule="@daily", timeZone="America/New_York")
    assert apply(kubectl, namespace, first).returncode == 0
    changed = copy.deepcopy(first)
    changed["spec"]["backupTemplate"]["spec"]["database"]["secretRef"]["name"] = "other-db"
    changed["spec"]["backupTemplate"]["spec"]["format"] = "plain"
    proc = apply(kubectl, namespace, changed)
    assert proc.returncode == 0, proc.stderr
    got = kubectl.json("get", "dbbackupschedule", "s1", "-n", namespace)
    parsed = DatabaseBackupSchedule.model_validate(got)
    assert parsed.spec.backup_template.spec.database.secret_ref.name == "other-db"
    assert parsed.spec.concurrency_policy == "Forbid"
    assert parsed.spec.successful_backups_history_limit == 3


def test_the_example_is_accepted(kubectl: Kubectl, namespace: str) -> None:
    example = yaml.safe_load((REPO / "migrations" / "backup-schedule.yaml").read_text())
    assert apply(kubectl, namespace, example).returncode == 0
    DatabaseBackupSchedule.model_validate(example)
