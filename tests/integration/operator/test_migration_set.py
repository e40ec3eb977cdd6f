"""MigrationSet end to end: a generated directory of 320 mixed migrations in ConfigMaps applied by
one Job, rolled back by lowering targetVersion and applied again by raising it; drift refused; a
failing migration in the middle; bad input refused with nothing applied; a set alongside
Migrations on one database; a dry run."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import migset
from harness.image.store import BUILDAH, LocalImage
from harness.kube import Cluster, Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.backups import CLAIM, claim
from integration.operator.manifests import history, migration, query, tables, wait_phase
from integration.operator.sets import (
    configmaps,
    migration_set,
    patch_spec,
    set_status,
    wait_set,
)

pytestmark = pytest.mark.integration

COUNT = 320


def applied_versions(url: str) -> list[str]:
    """Versions whose last history word is a successful apply, in order."""
    rows = query(
        url,
        "SELECT DISTINCT ON (version) version, kind, status FROM kubemigrate.history "
        "ORDER BY version, id DESC",
    )
    return sorted(v for v, kind, st in rows if kind == "apply" and st == "success")


def test_a_set_applies_rolls_back_and_reapplies(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    made = migset.files(COUNT)
    names = configmaps(kubectl, namespace, "app", made)
    assert len(names) > 1  # the directory is split across ConfigMaps
    kubectl.apply(migration_set("app", names), "-n", namespace)
    st = wait_set(kubectl, namespace, "app", "Succeeded", "Failed", timeout=180)
    assert st["phase"] == "Succeeded", st
    assert st["reason"] == "Applied"
    assert (st["applied"], st["pending"]) == (COUNT, 0)
    assert st["currentVersion"] == st["targetVersion"] == migset.version_of(COUNT)
    assert st["sourceChecksum"].startswith("sha256:")
    assert st["lastRun"]["applied"] == COUNT
    assert st["lastRun"]["job"].startswith("app-run-")
    assert len(st["recent"]) == 10 and st["recent"][-1]["version"] == migset.version_of(COUNT)
    ready = {c["type"]: c["status"] for c in st["conditions"]}
    assert ready == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    assert applied_versions(database_url) == [migset.version_of(i) for i in range(1, COUNT + 1)]
    successes = [v for v, kind, st in history(database_url) if st == "success"]
    assert len(successes) == len(set(successes)) == COUNT  # nothing applied twice
    assert query(database_url, "SELECT count(*) FROM base")[0][0] == 10 * sum(
        1 for i in range(2, COUNT + 1) if migset.KINDS[i % 4] == "dml"
    )
    jobs = kubectl.json("get", "jobs", "-n", namespace, "-l", "kubemigrate.dev/migrationset=app")
    assert len(jobs["items"]) == 1  # one run, not one per migration

    # Lowering targetVersion rolls back, newest first, with the down files.
    patch_spec(kubectl, namespace, "app", {"targetVersion": "00100"})
    st = wait_set(kubectl, namespace, "app", "Succeeded", "Failed", timeout=180)
    assert (st["phase"], st["reason"]) == ("Succeeded", "RolledBack"), st
    assert st["currentVersion"] == "00100" and st["pending"] == 0 and st["applied"] == 100
    assert st["lastRun"]["rolledBack"] == COUNT - 100
    assert applied_versions(database_url) == [migset.version_of(i) for i in range(1, 101)]
    assert "t00104" not in tables(database_url) and "t00100" in tables(database_url)
    rollbacks = [v for v, kind, s in history(database_url) if kind == "rollback" and s == "success"]
    assert rollbacks == [migset.version_of(i) for i in range(COUNT, 100, -1)]  # newest first

    # Raising it applies again.
    patch_spec(kubectl, namespace, "app", {"targetVersion": migset.version_of(COUNT)})
    st = wait_set(kubectl, namespace, "app", "Succeeded", "Failed", timeout=180)
    assert (st["phase"], st["reason"], st["currentVersion"]) == (
        "Succeeded",
        "Applied",
        migset.version_of(COUNT),
    )
    assert st["lastRun"]["applied"] == COUNT - 100

    # A changed file of an applied version is drift: refused, naming it, nothing run.
    before = history(database_url)
    changed = next(k for k in made if k.startswith("00044_") and k.endswith(".up.sql"))
    cm = next(n for n in names if changed in kubectl.json("get", "cm", n, "-n", namespace)["data"])
    kubectl.run(
        "patch",
        "cm",
        cm,
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"data":{"' + changed + '":"SELECT 1;\\n"}}',
    )
    patch_spec(kubectl, namespace, "app", {"targetVersion": migset.version_of(COUNT - 1)})
    st = wait_set(kubectl, namespace, "app", "Failed", timeout=60)
    assert st["reason"] == "DriftDetected" and "00044" in st["message"]
    assert history(database_url) == before


def test_a_failing_migration_stops_the_run_there(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    made = migset.files(50, fail_at=30)
    names = configmaps(kubectl, namespace, "bad", made)
    kubectl.apply(migration_set("bad", names), "-n", namespace)
    st = wait_set(kubectl, namespace, "bad", "Failed", timeout=120)
    assert st["reason"] == "SQLError"
    assert st["lastError"] == {
        "version": "00030",
        "file": "00030_notx_30.up.sql",
        "sqlstate": "42P01",
        "message": 'relation "no_such_table" does not exist',
        "statement": "INSERT INTO no_such_table VALUES (1)",
        "line": 2,
    }
    assert applied_versions(database_url) == [migset.version_of(i) for i in range(1, 30)]
    assert st["currentVersion"] == "00029" and st["pending"] == 21
    assert "broken_ok" not in tables(database_url)  # the failed migration's transaction
    assert not [v for v, _, _ in history(database_url) if v > "00030"]  # nothing after it
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions["Stalled"] == "True" and conditions["Ready"] == "False"


def test_bad_input_is_refused_with_nothing_applied(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    kubectl.run(
        "create",
        "configmap",
        "one",
        "-n",
        namespace,
        "--from-literal=001_a.up.sql=CREATE TABLE a (id int);",
        "--from-literal=002_b.up.sql=CREATE TABLE b (id int);",
    )
    kubectl.run(
        "create",
        "configmap",
        "two",
        "-n",
        namespace,
        "--from-literal=002_b.up.sql=CREATE TABLE b2 (id int);",
    )
    kubectl.run(
        "create",
        "configmap",
        "junk",
        "-n",
        namespace,
        "--from-literal=readme.sql=hello",
        "--from-literal=003_c.up.sql=SELECT 1;",
        "--from-literal=3_c2.up.sql=SELECT 2;",
    )
    kubectl.run("create", "configmap", "empty", "-n", namespace, "--from-literal=notes.txt=x")
    cases = {
        "missing": (["nope"], {}, "ConfigMapNotFound", "nope"),
        "dup": (["one", "two"], {}, "DuplicateFile", "ConfigMap one and ConfigMap two"),
        "junk": (["junk"], {}, "InvalidSource", "readme.sql"),
        "empty": (["empty"], {}, "EmptySource", "empty"),
        "target": (["one"], {"targetVersion": "7"}, "InvalidTarget", "7"),
    }
    for name, (cms, spec, _, _) in cases.items():
        kubectl.apply(migration_set(name, cms, **spec), "-n", namespace)
    for name, (_, _, reason, named) in cases.items():
        phases = ("Pending",) if reason == "ConfigMapNotFound" else ("Failed",)
        st = wait_set(kubectl, namespace, name, *phases, timeout=30)
        assert st["reason"] == reason, (name, st)
        assert named in st["message"], (name, st)
    assert "duplicate version 3" in set_status(kubectl, namespace, "junk")["message"]
    assert not query(database_url, "SELECT to_regclass('kubemigrate.history')")[0][0]
    assert not kubectl.json("get", "jobs", "-n", namespace)["items"]
    # The API refuses what its schema can: two sources at once.
    both = migration_set("both", ["one"]).replace(
        "configMaps:", "image: {reference: x, path: /m}\n    configMaps:"
    )
    refused = kubectl.apply(both, "-n", namespace, check=False)
    assert refused.returncode != 0 and "exactly one of spec.source.configMaps" in refused.stderr
    header = kubectl.run("get", "migset", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "TARGET", "CURRENT", "PENDING", "PHASE", "AGE"]
    listed = kubectl.run("get", "kubemigrate", "-n", namespace).stdout
    assert "migrationset.kubemigrate.dev/junk" in listed  # in the kubemigrate category
    # Every set the API accepted can be deleted (Failed, or retrying a missing ConfigMap).
    kubectl.run("delete", "migrationsets", "--all", "-n", namespace, "--timeout=60s", timeout=90)
    assert not kubectl.json("get", "migrationsets", "-n", namespace)["items"]


def test_a_set_alongside_migrations_and_a_dry_run(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    kubectl.apply(
        migration("early", "0.5", "CREATE TABLE early (id int);", preflight={"enabled": False}),
        "-n",
        namespace,
    )
    wait_phase(kubectl, namespace, "early", "Succeeded", timeout=60)
    kubectl.apply(
        migration("clash", "00005", "SELECT 1;", dryRun=True, preflight={"enabled": False}),
        "-n",
        namespace,
    )
    names = configmaps(kubectl, namespace, "side", migset.files(12))
    kubectl.apply(migration_set("side", names, dryRun=True), "-n", namespace)
    st = wait_set(kubectl, namespace, "side", "Failed", timeout=60)
    assert st["reason"] == "VersionConflict"
    assert (
        "MigrationSet side" in st["message"] and "Migration clash (version 00005)" in st["message"]
    )

    kubectl.run("delete", "migration", "clash", "-n", namespace)
    patch_spec(kubectl, namespace, "side", {"targetVersion": "00012"})  # a change wakes it
    st = wait_set(kubectl, namespace, "side", "DryRunSucceeded", "Failed", timeout=90)
    assert st["phase"] == "DryRunSucceeded", st
    assert st["dryRun"]["versions"] == [migset.version_of(i) for i in range(1, 13)]
    assert st["dryRun"]["migrations"] == 12
    assert "t00004" not in tables(database_url)  # rolled back
    assert applied_versions(database_url) == ["0.5"]

    patch_spec(kubectl, namespace, "side", {"dryRun": False})
    st = wait_set(kubectl, namespace, "side", "Succeeded", "Failed", timeout=90)
    assert st["phase"] == "Succeeded", st
    assert applied_versions(database_url) == ["0.5"] + [migset.version_of(i) for i in range(1, 13)]
    assert st["applied"] == 12 and st["currentVersion"] == "00012"
    assert wait_phase(kubectl, namespace, "early", "Succeeded")["phase"] == "Succeeded"

    # A Migration of a version the set holds is refused too, naming the set.
    kubectl.apply(
        migration("late", "00003", "SELECT 1;", preflight={"enabled": False}), "-n", namespace
    )
    late = wait_phase(kubectl, namespace, "late", "Failed", timeout=60)
    assert late["reason"] == "VersionConflict" and "MigrationSet side" in late["message"]
    assert applied_versions(database_url) == ["0.5"] + [migset.version_of(i) for i in range(1, 13)]


def test_progress_while_the_job_runs_and_an_operator_killed_mid_run(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    made = migset.files(40)
    slow = next(k for k in made if k.startswith("00021_") and k.endswith(".up.sql"))
    made[slow] = "SELECT pg_sleep(4);\n" + made[slow]
    names = configmaps(kubectl, namespace, "slow", made)
    first = start_operator()
    kubectl.apply(migration_set("slow", names), "-n", namespace)

    def midway() -> dict[str, Any] | None:
        st = set_status(kubectl, namespace, "slow")
        return st if st.get("phase") == "Applying" and (st.get("applied") or 0) >= 20 else None

    st = wait_for(midway, timeout=60, interval=0.3, what="status to show the run midway")
    assert st["pending"] == 40 - st["applied"] and st["currentVersion"] >= "00020"
    first.kill()
    start_operator()
    st = wait_set(kubectl, namespace, "slow", "Succeeded", "Failed", timeout=90)
    assert st["phase"] == "Succeeded", st
    assert (st["applied"], st["pending"], st["currentVersion"]) == (40, 0, "00040")
    successes = [v for v, kind, s in history(database_url) if s == "success"]
    assert len(successes) == len(set(successes)) == 40  # nothing applied twice
    jobs = kubectl.json("get", "jobs", "-n", namespace, "-l", "kubemigrate.dev/migrationset=slow")
    assert len(jobs["items"]) == 1  # the Job was adopted, not started again


@pytest.fixture
def app_image(dev_image: LocalImage, tmp_path: Path) -> Iterator[str]:
    """An application image holding 12 migrations in /app/migrations (built on the project's
    image with buildah, as an application's image would ship them)."""
    directory = tmp_path / "migrations"
    migset.write(directory, 12)
    tag = f"localhost/kubemigrate-settest:{uuid.uuid4().hex[:8]}"
    ctr = subprocess.run(
        [BUILDAH, "from", dev_image.name], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        subprocess.run([BUILDAH, "copy", ctr, str(directory), "/app/migrations"], check=True)
        subprocess.run([BUILDAH, "commit", "--quiet", ctr, tag], check=True, capture_output=True)
    finally:
        subprocess.run([BUILDAH, "rm", ctr], check=False, capture_output=True)
    yield tag
    subprocess.run([BUILDAH, "rmi", tag], check=False, capture_output=True)


def test_a_set_from_the_applications_image(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    operator: OperatorProcess,
    app_image: str,
    cluster: Cluster,
) -> None:
    if not cluster.local:
        pytest.skip("needs the local stack's node runner")
    body = yaml.safe_load(migration_set("img", ["x"]))
    body["spec"]["source"] = {
        "image": {"reference": app_image, "path": "/app/migrations", "pullPolicy": "Never"}
    }
    body["spec"]["targetVersion"] = "00010"
    kubectl.apply(yaml.safe_dump(body), "-n", namespace)
    st = wait_set(kubectl, namespace, "img", "Succeeded", "Failed", timeout=120)
    assert st["phase"] == "Succeeded", st
    assert st["currentVersion"] == "00010" and st["lastRun"]["applied"] == 10
    assert st["sourceChecksum"].startswith("sha256:")  # computed by the Job from the files
    assert applied_versions(database_url) == [migset.version_of(i) for i in range(1, 11)]
    [job] = kubectl.json("get", "jobs", "-n", namespace)["items"]
    [init] = job["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] == app_image and init["imagePullPolicy"] == "Never"


def test_a_backup_is_taken_once_before_the_run(
    kubectl: Kubectl, namespace: str, db_secret: str, database_url: str, operator: OperatorProcess
) -> None:
    kubectl.apply(claim(), "-n", namespace)
    names = configmaps(kubectl, namespace, "bk", migset.files(12))
    storage = {"persistentVolumeClaim": {"claimName": CLAIM, "path": "sets"}}
    kubectl.apply(migration_set("bk", names, backup={"storage": storage}), "-n", namespace)
    st = wait_set(kubectl, namespace, "bk", "Succeeded", "Failed", timeout=150)
    assert st["phase"] == "Succeeded", st
    name = st["backupRef"]["name"]
    [taken] = kubectl.json("get", "dbbackup", "-n", namespace)["items"]  # one, for the whole run
    assert taken["metadata"]["name"] == name
    assert taken["metadata"]["ownerReferences"][0]["kind"] == "MigrationSet"
    assert taken["status"]["phase"] == "Succeeded" and taken["status"]["verified"] is True
    assert applied_versions(database_url) == [migset.version_of(i) for i in range(1, 13)]
