"""The DatabaseBackup a DatabaseBackupSchedule creates for one scheduled time.

Its name comes from the schedule and the scheduled time (``<schedule>-<unix seconds>``), so an
operator that restarts between creating it and recording it in status finds it instead of
creating a second one. It is owned by the schedule (deleting the schedule deletes it, and its
file) and carries the scheduled time in an annotation for ordering and history limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubemigrate.controller.build.jobs import Owner, owner_reference
from kubemigrate.controller.build.labels import label_value
from kubemigrate.controller.build.status import rfc3339, to_second
from kubemigrate.controller.scheduling.history import SCHEDULE_LABEL, SCHEDULED_AT
from kubemigrate.models import API_VERSION
from kubemigrate.models.schedule import DatabaseBackupScheduleSpec

MAX_NAME = 63
STAMP = 10
"""Digits of a unix time until the year 2286."""


def owner(obj: Mapping[str, Any]) -> Owner:
    meta = obj["metadata"]
    return Owner(
        "DatabaseBackupSchedule",
        meta["name"],
        meta["namespace"],
        meta["uid"],
        int(meta.get("generation", 1)),
    )


def backup_name(schedule: str, at: datetime) -> str:
    """``<schedule>-<unix seconds>``, at most 63 characters (a long schedule name is cut and
    given a hash of itself, so two long names sharing a prefix still differ)."""
    stamp = str(int(at.timestamp()))
    room = MAX_NAME - len(stamp) - 1
    base = schedule
    if len(base) > room:
        digest = hashlib.sha256(schedule.encode()).hexdigest()[:8]
        base = f"{schedule[: room - 9].rstrip('-.')}-{digest}"
    return f"{base}-{stamp}"


def backup_manifest(
    obj: Mapping[str, Any], spec: DatabaseBackupScheduleSpec, at: datetime
) -> dict[str, Any]:
    """The DatabaseBackup of the run scheduled at `at`: the template's spec, labels and
    annotations, plus ours (which win)."""
    me = owner(obj)
    template = spec.backup_template
    return {
        "apiVersion": API_VERSION,
        "kind": "DatabaseBackup",
        "metadata": {
            "name": backup_name(me.name, at),
            "namespace": me.namespace,
            "labels": {
                **template.labels,
                "app.kubernetes.io/managed-by": "kubemigrate",
                SCHEDULE_LABEL: label_value(me.name),
            },
            "annotations": {**template.annotations, SCHEDULED_AT: rfc3339(to_second(at))},
            "ownerReferences": [owner_reference(me)],
        },
        "spec": template.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }
