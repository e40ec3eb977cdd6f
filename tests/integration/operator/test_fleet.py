"""Fleet rollouts end to end (issue 14): a MigrationSet over 30 tenant databases chosen by label
that halts on a failing tenant and resumes without re-running the others; a canary that fails;
50 tenant schemas in one database; a tenant added after the rollout; bad input; a paused
rollout; an operator killed mid-rollout; a fleet rolled back by lowering targetVersion."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from harness import migset, tenants
from harness.kube import Cluster, Kubectl, wait_for
from harness.operator import OperatorProcess
from harness.tenants import Tenant
from integration.operator.fleets import (
    applied,
    applied_twice,
    apply_secrets,
    bump,
    conditions,
    everything_said,
    execute,
    fleet,
    fleet_set,
    history_rows,
    outcome,
    pod_logs,
    schema_targets,
    untouched,
    user_tables,
    wait_rollout,
)
from integration.operator.manifests import query
from integration.operator.sets import configmaps

pytestmark = pytest.mark.integration

COUNT = 8
FULL = [migset.version_of(i) for i in range(1, COUNT + 1)]
CONFLICT = "CREATE TABLE t00004 (id int)"
"""A table version 00004 creates: that tenant fails there (42P07), after 00001-00003."""

COUNTS = ("total", "succeeded", "failed", "running", "pending")
Tenants = Callable[..., list[Tenant]]


def waves(kubectl: Kubectl, namespace: str, name: str) -> list[list[str]]:
    """The target lists of the set's waves, oldest first (its ConfigMaps of part `targets`)."""
    found = []
    selector = f"kubemigrate.dev/migrationset={name},kubemigrate.dev/part=targets"
    for cm in kubectl.json("get", "configmaps", "-n", namespace, "-l", selector)["items"]:
        meta = cm["metadata"]
        number = int(meta["labels"]["kubemigrate.dev/wave"])
        names = (cm.get("data") or {}).get("targets", "").split()
        found.append((meta["creationTimestamp"], number, names))
    return [names for _, _, names in sorted(found)]


def counts(st: dict[str, Any]) -> dict[str, int]:
    """status.targets with every count present (0 when left out)."""
    given = st.get("targets") or {}
    return {k: int(given.get(k) or 0) for k in COUNTS}


def runs_per_target(kubectl: Kubectl, namespace: str, name: str) -> Counter[str]:
    """How many waves of the set each target was listed in: a target runs at most once a wave,
    and one not reached (halted, paused) is listed again in the next wave."""
    return Counter(target for wave in waves(kubectl, namespace, name) for target in wave)


def wave_jobs(kubectl: Kubectl, namespace: str, name: str) -> list[str]:
    """The names of the set's wave Jobs."""
    selector = f"kubemigrate.dev/migrationset={name},kubemigrate.dev/part=job"
    found = kubectl.json("get", "jobs", "-n", namespace, "-l", selector)["items"]
    return [j["metadata"]["name"] for j in found]


def start_fleet(
    kubectl: Kubectl,
    namespace: str,
    fleet_: list[Tenant],
    *,
    made: dict[str, str] | None = None,
    **spec: Any,
) -> None:
    """The tenants' Secrets, the migrations' ConfigMaps and a set `orders` over them."""
    apply_secrets(kubectl, namespace, tenants.secrets(fleet_))
    names = configmaps(kubectl, namespace, "orders", made or migset.files(COUNT))
    kubectl.apply(fleet_set("orders", names, **spec), "-n", namespace)


def without_targets(manifest: str) -> str:
    body = yaml.safe_load(manifest)
    del body["spec"]["targets"]
    return yaml.safe_dump(body)


def snapshot(fleet_: list[Tenant]) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: history_rows(t.url) for t in fleet_}


def test_a_failing_tenant_halts_the_rollout_and_a_resume_finishes_only_the_rest(
    kubectl: Kubectl,
    namespace: str,
    tenant_databases: Tenants,
    operator: OperatorProcess,
) -> None:
    fleet_ = tenant_databases(30)
    bad = fleet_[4]
    execute(bad.url, CONFLICT)
    rollout = {"canary": 1, "maxParallel": 3, "maxFailures": 0}
    start_fleet(kubectl, namespace, fleet_, rollout=rollout)
    st = wait_rollout(kubectl, namespace, "orders", timeout=300)
    assert (st["phase"], st["reason"]) == ("Halted", "TooManyFailures"), st
    assert conditions(st)["Ready"] == "False"
    [failed] = st["failedTargets"]
    assert failed["name"] == bad.name
    assert failed["sqlstate"] == "42P07" and "t00004" in failed["message"], failed
    n = counts(st)
    assert (n["total"], n["failed"], n["running"]) == (30, 1, 0), n
    assert n["succeeded"] + n["failed"] + n["pending"] == 30, n
    by = outcome(fleet_, FULL)
    assert by["partial"] == [bad.name], by  # every other tenant: all of it or nothing
    assert applied(bad.url) == FULL[:3]
    assert fleet_[0].name in by["migrated"]  # the canary
    assert len(by["migrated"]) == n["succeeded"]
    # Nothing new started after the failure: most tenants were never reached.
    assert len(by["untouched"]) == n["pending"] >= 15, (by, n)
    assert all(not untouched(t) for t in fleet_[:5])
    before = snapshot([t for t in fleet_ if t.name in by["migrated"]])

    # Fix the tenant, bump the spec: the rest run, the succeeded ones do not.
    execute(bad.url, "DROP TABLE t00004")
    bump(kubectl, namespace, "orders", {"rollout": {**rollout, "maxParallel": 4}})
    st = wait_rollout(kubectl, namespace, "orders", timeout=300)
    assert (st["phase"], st["reason"]) == ("Succeeded", "RolledOut"), st
    assert conditions(st)["Ready"] == "True"
    assert counts(st) == {
        "total": 30,
        "succeeded": 30,
        "failed": 0,
        "running": 0,
        "pending": 0,
    }
    assert not st.get("failedTargets")
    assert st["currentVersion"] == FULL[-1]
    assert outcome(fleet_, FULL)["migrated"] == [t.name for t in fleet_]
    assert snapshot([t for t in fleet_ if t.name in before]) == before
    assert all(applied_twice(t.url) == [] for t in fleet_)
    runs = runs_per_target(kubectl, namespace, "orders")
    assert runs[bad.name] == 2 and set(runs) == {t.name for t in fleet_}
    assert all(runs[n] == 1 for n in before), runs  # a succeeded tenant was in one wave only


def test_a_failing_canary_halts_before_any_other_tenant(
    kubectl: Kubectl,
    namespace: str,
    tenant_databases: Tenants,
    operator: OperatorProcess,
) -> None:
    fleet_ = tenant_databases(5)
    execute(fleet_[0].url, CONFLICT)
    start_fleet(kubectl, namespace, fleet_, rollout={"canary": 1, "maxFailures": 3})
    st = wait_rollout(kubectl, namespace, "orders", timeout=180)
    assert (st["phase"], st["reason"]) == ("Halted", "CanaryFailed"), st
    assert [f["name"] for f in st["failedTargets"]] == [fleet_[0].name]
    assert counts(st)["pending"] == 4
    assert all(untouched(t) for t in fleet_[1:])  # maxFailures does not apply to the canary
    assert waves(kubectl, namespace, "orders") == [[fleet_[0].name]]


def test_fifty_tenant_schemas_in_one_database(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
) -> None:
    schemas = tenants.schema_names(50)
    tenants.create_schemas(database_url, schemas)
    pick = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' ORDER BY 1"
    names = configmaps(kubectl, namespace, "orders", migset.files(COUNT))
    targets = schema_targets(db_secret, query=pick)
    manifest = fleet_set("orders", names, targets=targets, rollout={"maxParallel": 10})
    kubectl.apply(manifest, "-n", namespace)
    st = wait_rollout(kubectl, namespace, "orders", timeout=300)
    assert st["phase"] == "Succeeded", st
    assert (counts(st)["total"], counts(st)["succeeded"]) == (50, 50)
    assert st["currentVersion"] == FULL[-1]
    for schema in schemas:  # each its own history, its tables in its schema
        assert applied(database_url, schema) == FULL, schema
        assert applied_twice(database_url, schema) == []
        assert {"base", "t00004", "t00008", "history"} <= user_tables(database_url, schema)
    assert user_tables(database_url) == set()  # nothing in public
    assert not query(database_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'kubemigrate'")


def test_a_tenant_added_after_the_rollout_is_migrated_by_itself(
    kubectl: Kubectl,
    namespace: str,
    tenant_databases: Tenants,
    operator: OperatorProcess,
) -> None:
    fleet_ = tenant_databases(4)
    first, late = fleet_[:3], fleet_[3]
    start_fleet(kubectl, namespace, first, rollout={"maxParallel": 2})
    st = wait_rollout(kubectl, namespace, "orders", timeout=180)
    assert st["phase"] == "Succeeded" and counts(st)["total"] == 3, st
    before = snapshot(first)
    earlier = waves(kubectl, namespace, "orders")

    apply_secrets(kubectl, namespace, tenants.secrets([late]))

    def migrated() -> dict[str, Any] | None:
        s = fleet(kubectl, namespace, "orders").get("status") or {}
        done = counts(s)["succeeded"] == 4 and s.get("phase") == "Succeeded"
        return s if done else None

    st = wait_for(migrated, timeout=180, interval=0.5, what="the new tenant to be migrated")
    assert counts(st)["total"] == 4
    assert applied(late.url) == FULL
    assert snapshot(first) == before
    assert waves(kubectl, namespace, "orders") == [*earlier, [late.name]]  # a wave of its own


def test_bad_input(
    cluster: Cluster,
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    tenant_databases: Tenants,
    operator: OperatorProcess,
) -> None:
    names = configmaps(kubectl, namespace, "orders", migset.files(COUNT))
    [good, nokey] = tenant_databases(2)
    label = {"app": "bad-input"}
    canary_url = nokey.url.replace("postgresql://", "postgresql://canary-Xyzzy-1@", 1)
    canary_text = "canary-Xyzzy-2 is not a URL"
    apply_secrets(
        kubectl,
        namespace,
        [
            tenants.secret("a-good", {"url": good.url}, label),
            tenants.secret("b-nokey", {"uri": canary_url}, label),
            tenants.secret("c-noturl", {"url": canary_text}, label),
        ],
    )
    tenants.create_schemas(database_url, ["tenant_a"])
    sets = {
        "nomatch": {"targets": {"secretSelector": {"matchLabels": {"app": "nobody"}}}},
        "keys": {
            "targets": {"secretSelector": {"matchLabels": label}},
            "rollout": {"maxFailures": 2},
        },
        "schemas": {
            "targets": schema_targets(db_secret, names=["tenant_a", "tenant_nope"]),
            "rollout": {"maxFailures": 1},
        },
    }
    for name, spec in sets.items():
        kubectl.apply(fleet_set(name, names, **spec), "-n", namespace)

    def no_targets() -> dict[str, Any] | None:
        obj = fleet(kubectl, namespace, "nomatch")
        s = obj.get("status") or {}
        current = s.get("observedGeneration") == obj["metadata"]["generation"]
        return s if current and s.get("reason") == "NoTargets" else None

    st = wait_for(no_targets, timeout=60, interval=0.5, what="nomatch to say NoTargets")
    assert conditions(st).get("Ready") != "True" and st.get("message"), st
    assert not wave_jobs(kubectl, namespace, "nomatch")

    st = wait_rollout(kubectl, namespace, "keys", timeout=180)
    failed = {f["name"]: f for f in st["failedTargets"]}
    assert set(failed) == {"b-nokey", "c-noturl"}, st
    assert all(f["message"] for f in failed.values())
    assert "url" in failed["b-nokey"]["message"]  # names the missing key
    assert (st["phase"], st["reason"]) == ("Failed", "TargetsFailed"), st
    assert (counts(st)["succeeded"], counts(st)["failed"]) == (1, 2)
    assert applied(good.url) == FULL and untouched(nokey)

    st = wait_rollout(kubectl, namespace, "schemas", timeout=180)
    assert [f["name"] for f in st["failedTargets"]] == ["tenant_nope"], st
    assert applied(database_url, "tenant_a") == FULL
    assert not query(database_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_nope'")

    said = everything_said(cluster, namespace, operator.text())
    assert any("c-noturl" in log for log in pod_logs(cluster, namespace))  # logs are read
    assert "canary-Xyzzy" not in said  # no Secret value in status, events, Jobs, ledgers, logs

    # What the API's schema can refuse, it refuses.
    refused = {
        "zero": fleet_set("zero", names, rollout={"maxParallel": 0}),
        "both": fleet_set("both", names, database={"secretRef": {"name": db_secret}}),
        "neither": without_targets(fleet_set("neither", names)),
    }
    for name, manifest in refused.items():
        done = kubectl.apply(manifest, "-n", namespace, check=False)
        assert done.returncode != 0, (name, done.stdout)
    assert "maxParallel" in kubectl.apply(refused["zero"], "-n", namespace, check=False).stderr
    assert not [
        s
        for s in kubectl.json("get", "migrationsets", "-n", namespace)["items"]
        if s["metadata"]["name"] in refused
    ]


def slow_files(seconds: float) -> dict[str, str]:
    """The migrations, version 00005 sleeping first: a tenant takes a while."""
    made = migset.files(COUNT)
    slow = next(k for k in made if k.startswith("00005_") and k.endswith(".up.sql"))
    made[slow] = f"SELECT pg_sleep({seconds});\n" + made[slow]
    return made


def test_a_paused_rollout_starts_nothing_new_and_resumes_when_unpaused(
    kubectl: Kubectl,
    namespace: str,
    tenant_databases: Tenants,
    operator: OperatorProcess,
) -> None:
    fleet_ = tenant_databases(12)
    rollout = {"maxParallel": 2}
    start_fleet(kubectl, namespace, fleet_, made=slow_files(1), rollout=rollout)

    def midway() -> dict[str, int] | None:
        n = counts(fleet(kubectl, namespace, "orders").get("status") or {})
        return n if n["succeeded"] >= 2 and n["pending"] > 2 else None

    wait_for(midway, timeout=180, interval=0.3, what="the rollout midway")
    bump(kubectl, namespace, "orders", {"rollout": {**rollout, "paused": True}})

    def paused() -> dict[str, Any] | None:
        s = fleet(kubectl, namespace, "orders").get("status") or {}
        return s if s.get("reason") == "Paused" and counts(s)["running"] == 0 else None

    st = wait_for(paused, timeout=120, interval=0.5, what="the rollout to pause")
    assert counts(st)["pending"] > 0 and "paused" in st["message"], st
    by = outcome(fleet_, FULL)
    assert by["partial"] == [] and len(by["migrated"]) == counts(st)["succeeded"], (by, st)
    time.sleep(6)  # unpaused, two workers would finish several tenants in this time
    assert outcome(fleet_, FULL) == by
    assert counts(fleet(kubectl, namespace, "orders")["status"]) == counts(st)
    before = snapshot([t for t in fleet_ if t.name in by["migrated"]])

    bump(kubectl, namespace, "orders", {"rollout": {**rollout, "paused": False}})
    st = wait_rollout(kubectl, namespace, "orders", timeout=300)
    assert (st["phase"], counts(st)["succeeded"]) == ("Succeeded", 12), st
    assert outcome(fleet_, FULL)["migrated"] == [t.name for t in fleet_]
    assert snapshot([t for t in fleet_ if t.name in before]) == before
    assert all(applied_twice(t.url) == [] for t in fleet_)
    runs = runs_per_target(kubectl, namespace, "orders")
    assert all(runs[name] == 1 for name in before), runs  # none run again after the pause
    assert len(runs) == 12 and max(runs.values()) <= 2  # the rest: the paused wave, then the next


def test_an_operator_killed_mid_rollout_applies_nothing_twice(
    kubectl: Kubectl,
    namespace: str,
    tenant_databases: Tenants,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    fleet_ = tenant_databases(12)
    first = start_operator()
    start_fleet(kubectl, namespace, fleet_, made=slow_files(1.5), rollout={"maxParallel": 3})

    def midway() -> dict[str, int] | None:
        n = counts(fleet(kubectl, namespace, "orders").get("status") or {})
        return n if n["succeeded"] >= 2 and n["pending"] > 0 else None

    wait_for(midway, timeout=180, interval=0.3, what="the rollout midway")
    first.kill()
    at_kill = len(outcome(fleet_, FULL)["migrated"])
    wait_for(
        lambda: len(outcome(fleet_, FULL)["migrated"]) > at_kill,
        timeout=60,
        interval=0.5,
        what="the wave to go on migrating tenants while no operator runs",
    )
    start_operator()
    st = wait_rollout(kubectl, namespace, "orders", timeout=300)
    assert st["phase"] == "Succeeded", st
    assert counts(st)["succeeded"] == 12
    for t in fleet_:
        assert applied(t.url) == FULL, t.name
        assert applied_twice(t.url) == [], t.name
        assert not [r for r in history_rows(t.url) if r[4] == "failed"], t.name
    runs = runs_per_target(kubectl, namespace, "orders")
    assert runs == Counter({t.name: 1 for t in fleet_}), runs  # each tenant in one wave
    started = wave_jobs(kubectl, namespace, "orders")
    assert len(started) == len(waves(kubectl, namespace, "orders")), started  # none twice


def test_a_fleet_rolls_back_by_lowering_target_version(
    kubectl: Kubectl,
    namespace: str,
    tenant_databases: Tenants,
    operator: OperatorProcess,
) -> None:
    fleet_ = tenant_databases(4)
    start_fleet(kubectl, namespace, fleet_, rollout={"maxParallel": 2})
    st = wait_rollout(kubectl, namespace, "orders", timeout=180)
    assert st["phase"] == "Succeeded" and st["currentVersion"] == FULL[-1], st
    bump(kubectl, namespace, "orders", {"targetVersion": "00005"})
    st = wait_rollout(kubectl, namespace, "orders", timeout=180)
    assert st["phase"] == "Succeeded" and st["currentVersion"] == "00005", st
    assert counts(st)["succeeded"] == 4
    for t in fleet_:
        assert applied(t.url) == FULL[:5], t.name
        rollbacks = [r[2] for r in history_rows(t.url) if r[3] == "rollback" and r[4] == "success"]
        assert rollbacks == ["00008", "00007", "00006"], t.name  # newest first
        assert "t00008" not in user_tables(t.url) and "t00004" in user_tables(t.url)
