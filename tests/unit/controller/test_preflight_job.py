"""The preflight Job's ConfigMaps: inline SQL of any accepted size is split so that no ConfigMap
reaches the API server's 1 MiB limit, and the Job mounts and joins every part in order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubemigrate.controller.build import preflight
from kubemigrate.controller.build.jobs import Owner
from kubemigrate.models.migration import SQL_MAX_LENGTH, MigrationSpec

OWNER = Owner("Migration", "m1", "ns", "uid-1", generation=2)
CONFIGMAP_LIMIT = 1024 * 1024


def spec(**fields: Any) -> MigrationSpec:
    return MigrationSpec.model_validate(
        {"database": {"secretRef": {"name": "db"}}, "version": "1", **fields}
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1;",
        "x" * preflight.PART_BYTES,
        "x" * (preflight.PART_BYTES + 1),
        "é" * (preflight.PART_BYTES // 2 + 7),  # two bytes each: a cut would split one
        "€" * 400_000,
    ],
    ids=["small", "one-part-exactly", "one-byte-over", "two-byte-chars", "three-byte-chars"],
)
def test_parts_join_to_the_sql_and_fit(sql: str) -> None:
    parts = preflight.sql_parts(sql)
    assert "".join(parts) == sql
    assert all(0 < len(p.encode()) <= preflight.PART_BYTES for p in parts)


def _size(configmap: dict[str, Any]) -> int:
    return sum(len(v.encode()) for v in configmap["data"].values())


@pytest.mark.parametrize("size", [1024, 300 * 1024, 900 * 1024, SQL_MAX_LENGTH])
def test_configmaps_fit_and_the_job_reads_every_part_in_order(size: int) -> None:
    sql = "SELECT 1;\n" + "-" * (size - 10)
    migration = spec(sql=sql, description="d" * 4096)
    plan = preflight.plan(migration, requires=[str(v) for v in range(64)], expected={})
    maps = preflight.configmaps(OWNER, migration, plan)
    assert all(_size(m) < CONFIGMAP_LIMIT for m in maps)
    assert json.loads(maps[0]["data"]["plan.json"]) == plan
    request = preflight.job_request(OWNER, migration, 600, 0)
    mounted = {
        m["mountPath"]: next(v for v in request.volumes if v["name"] == m["name"])
        for m in request.mounts
    }
    by_name = {m["metadata"]["name"]: m for m in maps}
    joined = ""
    for path in plan["sqlFiles"]:
        directory, _, key = path.rpartition("/")
        joined += by_name[mounted[directory]["configMap"]["name"]]["data"][key]
    assert joined == sql
    assert len(maps) == len(plan["sqlFiles"]) == -(-len(sql) // preflight.PART_BYTES)


def test_sql_from_a_configmap_is_mounted_not_copied() -> None:
    migration = spec(sqlFrom={"configMapKeyRef": {"name": "big-sql", "key": "up.sql"}})
    plan = preflight.plan(migration, requires=[], expected={})
    (only,) = preflight.configmaps(OWNER, migration, plan)
    assert set(only["data"]) == {"plan.json"}
    assert plan["sqlFiles"] == [f"{preflight.SOURCE_DIR}/up.sql"]
    request = preflight.job_request(OWNER, migration, 600, 0)
    assert {"name": "big-sql", "items": [{"key": "up.sql", "path": "up.sql"}]} in [
        v.get("configMap") for v in request.volumes
    ]
