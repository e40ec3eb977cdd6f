"""Pure builders for the preflight Job of a Migration (its verdict is read by jobresult).

The Job gets a ConfigMap holding `plan.json` (what to check) and, for inline SQL, `up.sql`;
SQL from the user's ConfigMap (`sqlFrom`) is mounted from there directly. Inline SQL may be as
large as 1 MiB, and the API server refuses a ConfigMap over 1 MiB (the plan included), so inline
SQL goes in parts of at most `PART_BYTES`, one ConfigMap each (`<job>`, `<job>-sql1`, ...), cut
between characters; the plan lists the files in order (`sqlFiles`) and the Job joins them. The
Job writes its report as JSON to the termination message, which the operator reads from the
pod's status.
"""

from __future__ import annotations

import json
from typing import Any

from kubemigrate.controller.build.jobs import WORK_DIR, JobRequest, Owner, job_name, labels
from kubemigrate.controller.build.jobs import owner_reference as owner_ref
from kubemigrate.models.migration import MigrationSpec

COMPONENT = "preflight"
PLAN_DIR = f"{WORK_DIR}/plan"
SOURCE_DIR = f"{WORK_DIR}/source"
PART_BYTES = 512 * 1024
"""At most this much SQL (UTF-8 bytes) in one ConfigMap: half the API server's limit, leaving
room for the plan, whose description and requirements are bounded by the schema."""


def sql_parts(sql: str, limit: int = PART_BYTES) -> list[str]:
    """sql in order, cut into parts of at most limit bytes of UTF-8, never inside a character."""
    data, start = sql.encode(), 0
    parts: list[str] = []
    while start < len(data) or not parts:
        end = min(len(data), start + limit)
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte
            end -= 1
        parts.append(data[start:end].decode())
        start = end
    return parts


def _part_dir(index: int) -> str:
    return PLAN_DIR if index == 0 else f"{WORK_DIR}/sql{index}"


def _part_name(owner: Owner, index: int) -> str:
    base = job_name(owner, COMPONENT)
    return base if index == 0 else f"{base}-sql{index}"


def plan(spec: MigrationSpec, *, requires: list[str], expected: dict[str, str]) -> dict[str, Any]:
    """The preflight plan: this migration, the versions it needs, the checksums to compare."""
    if spec.sql is not None:
        files = [f"{_part_dir(i)}/up.sql" for i in range(len(sql_parts(spec.sql)))]
    else:
        files = [f"{SOURCE_DIR}/up.sql"]
    return {
        "version": spec.version,
        "description": spec.description or "",
        "sqlFiles": files,
        "transactional": spec.transactional,
        "historySchema": spec.history_schema,
        "requires": requires,
        "expected": expected,
        "dryRun": spec.preflight.dry_run,
    }


def configmaps(owner: Owner, spec: MigrationSpec, plan_doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The ConfigMaps the Job mounts, owned by the Migration: the first is named like the Job
    and holds the plan (and the first part of inline SQL), the others the rest of the SQL."""
    parts = sql_parts(spec.sql) if spec.sql is not None else []
    data = [{"up.sql": part} for part in parts] or [{}]
    data[0]["plan.json"] = json.dumps(plan_doc, sort_keys=True, indent=1)
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": _part_name(owner, index),
                "namespace": owner.namespace,
                "labels": labels(owner, COMPONENT),
                "ownerReferences": [owner_ref(owner)],
            },
            "data": content,
        }
        for index, content in enumerate(data)
    ]


def job_request(owner: Owner, spec: MigrationSpec, deadline: int, attempt: int) -> JobRequest:
    """The preflight Job's arguments, volumes and Secret reference."""
    volumes: list[dict[str, Any]] = [
        {"name": "plan", "configMap": {"name": job_name(owner, COMPONENT)}}
    ]
    mounts: list[dict[str, Any]] = [{"name": "plan", "mountPath": PLAN_DIR, "readOnly": True}]
    for index in range(1, len(sql_parts(spec.sql)) if spec.sql is not None else 1):
        volumes.append({"name": f"sql{index}", "configMap": {"name": _part_name(owner, index)}})
        mounts.append({"name": f"sql{index}", "mountPath": _part_dir(index), "readOnly": True})
    if spec.sql_from is not None:
        ref = spec.sql_from.config_map_key_ref
        volumes.append(
            {
                "name": "source",
                "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": "up.sql"}]},
            }
        )
        mounts.append({"name": "source", "mountPath": SOURCE_DIR, "readOnly": True})
    secret = spec.database.secret_ref
    return JobRequest(
        COMPONENT,
        ["preflight", "--plan", f"{PLAN_DIR}/plan.json"],
        secret.name,
        secret.key,
        volumes,
        mounts,
        deadline,
        attempt=attempt,
    )
