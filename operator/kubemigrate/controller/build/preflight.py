"""Pure builders for the preflight Job of a Migration (its verdict is read by jobresult).

The Job gets a ConfigMap holding `plan.json` (what to check) and, for inline SQL, `up.sql`;
SQL from the user's ConfigMap (`sqlFrom`) is mounted from there directly, so nothing over the
ConfigMap size limit is ever copied. The Job writes its report as JSON to the termination
message, which the operator reads from the pod's status.
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


def plan(spec: MigrationSpec, *, requires: list[str], expected: dict[str, str]) -> dict[str, Any]:
    """The preflight plan: this migration, the versions it needs, the checksums to compare."""
    sql_file = f"{PLAN_DIR}/up.sql" if spec.sql is not None else f"{SOURCE_DIR}/up.sql"
    return {
        "version": spec.version,
        "description": spec.description or "",
        "sqlFile": sql_file,
        "transactional": spec.transactional,
        "historySchema": spec.history_schema,
        "requires": requires,
        "expected": expected,
        "dryRun": spec.preflight.dry_run,
    }


def configmap(owner: Owner, spec: MigrationSpec, plan_doc: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap the Job mounts; named like the Job and owned by the Migration."""
    data = {"plan.json": json.dumps(plan_doc, sort_keys=True, indent=1)}
    if spec.sql is not None:
        data["up.sql"] = spec.sql
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": job_name(owner, COMPONENT),
            "namespace": owner.namespace,
            "labels": labels(owner, COMPONENT),
            "ownerReferences": [owner_ref(owner)],
        },
        "data": data,
    }


def job_request(owner: Owner, spec: MigrationSpec, deadline: int, attempt: int) -> JobRequest:
    """The preflight Job's arguments, volumes and Secret reference."""
    volumes: list[dict[str, Any]] = [
        {"name": "plan", "configMap": {"name": job_name(owner, COMPONENT)}}
    ]
    mounts: list[dict[str, Any]] = [{"name": "plan", "mountPath": PLAN_DIR, "readOnly": True}]
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
