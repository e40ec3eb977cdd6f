"""The MigrationSet's pure builders: merging ConfigMaps, the run's key and Job, progress."""

from __future__ import annotations

import pytest

from kubemigrate.controller.build import set_job
from kubemigrate.controller.build.jobs import Owner
from kubemigrate.controller.build.set_status import last_error, progress, run_fields
from kubemigrate.engine import VersionState
from kubemigrate.models.migration_set import MigrationSetSpec
from kubemigrate.settings import Settings

OWNER = Owner("MigrationSet", "orders", "ns", "uid-1", 3)


def spec(**extra: object) -> MigrationSetSpec:
    body: dict[str, object] = {
        "database": {"secretRef": {"name": "db"}},
        "source": {"configMaps": [{"name": "a"}, {"name": "b"}]},
        **extra,
    }
    return MigrationSetSpec.model_validate(body)


def test_merge_names_both_configmaps_of_a_duplicate_file() -> None:
    merged = set_job.merge(
        [("a", {"1_x.up.sql": "A", "2_y.up.sql": "B"}), ("b", {"2_y.up.sql": "C"})]
    )
    assert merged.files == {"1_x.up.sql": "A", "2_y.up.sql": "B"}
    assert merged.problems == ["file 2_y.up.sql is in ConfigMap a and ConfigMap b"]


def test_run_key_changes_with_any_part() -> None:
    base = set_job.run_key("sha256:x", "10", 1)
    assert base == set_job.run_key("sha256:x", "10", 1)
    assert (
        len({base, set_job.run_key("sha256:y", "10", 1), set_job.run_key("sha256:x", "9", 1)}) == 3
    )


def test_the_job_mounts_every_configmap_key_as_a_file() -> None:
    job = set_job.set_job(
        OWNER,
        spec(targetVersion="2", timeouts={"lock": "5s"}),
        Settings(),
        keys={"a": ["1_x.up.sql"], "b": ["2_y.up.sql"]},
        target="2",
        run="abc",
    )
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == set_job.SOURCE_VOLUME)
    assert volume["projected"]["sources"] == [
        {"configMap": {"name": "a", "items": [{"key": "1_x.up.sql", "path": "1_x.up.sql"}]}},
        {"configMap": {"name": "b", "items": [{"key": "2_y.up.sql", "path": "2_y.up.sql"}]}},
    ]
    args = pod["containers"][0]["args"]
    assert args[:2] == ["run-set", set_job.SOURCE_DIR]
    assert args[args.index("--target") + 1] == "2"
    assert args[args.index("--lock-timeout") + 1] == "5"
    assert args[args.index("--resource-uid") + 1] == "uid-1"
    assert job["spec"]["backoffLimit"] == 0
    assert job["metadata"]["name"] == "orders-run-abc-g3"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "MigrationSet"
    assert "initContainers" not in pod


def test_an_image_source_is_copied_by_an_init_container() -> None:
    image = {
        "reference": "registry/app:1",
        "path": "/app/migrations/",
        "pullPolicy": "Always",
        "pullSecrets": [{"name": "regcred"}],
    }
    job = set_job.set_job(
        OWNER,
        MigrationSetSpec.model_validate(
            {"database": {"secretRef": {"name": "db"}}, "source": {"image": image}}
        ),
        Settings(),
        keys={},
        target=None,
        run="k",
    )
    pod = job["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    assert init["image"] == "registry/app:1" and init["imagePullPolicy"] == "Always"
    assert init["command"] == ["cp", "-R", "/app/migrations/.", f"{set_job.SOURCE_DIR}/"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert {"name": set_job.SOURCE_VOLUME, "emptyDir": {}} in pod["volumes"]
    assert "--target" not in pod["containers"][0]["args"]


def test_exactly_one_source() -> None:
    with pytest.raises(ValueError, match=r"exactly one of spec\.source"):
        MigrationSetSpec.model_validate({"database": {"secretRef": {"name": "db"}}, "source": {}})


def state(version: str, state: str) -> VersionState:
    return VersionState(version, "", state, None)  # type: ignore[arg-type]


def test_progress_counts_towards_the_target_both_ways() -> None:
    states = [state("1", "applied"), state("2", "applied"), state("3", "pending")]
    up = progress(states, ["1", "2", "3"], "3")
    assert (up.current, up.applied, up.pending) == ("2", 2, 1)
    down = progress(states, ["1", "2", "3"], "1")
    assert (down.current, down.applied, down.pending) == ("2", 2, 1)
    everything = progress(states, ["1", "2", "3"], "0")
    assert everything.pending == 2
    image = progress(states, None, "0")
    assert (image.current, image.applied, image.pending) == ("2", 2, 0)


def test_run_fields_of_a_failed_run() -> None:
    data = {
        "ok": False,
        "applied": 2,
        "rolledBack": 0,
        "rowsAffected": 3,
        "startedAt": "2024-01-01T00:00:00.5Z",
        "completedAt": "2024-01-01T00:00:01Z",
        "durationSeconds": 0.5,
        "recent": [{"version": "2", "description": "x", "kind": "apply", "durationSeconds": 0.1}],
        "lastError": {"version": "3", "file": "3_z.up.sql", "sqlstate": "42P01", "message": "m"},
    }
    fields = run_fields(data, "job-1")
    assert fields.last_run is not None and fields.last_run.job == "job-1"
    assert fields.last_run.applied == 2
    assert fields.last_error is not None and fields.last_error.file == "3_z.up.sql"
    assert [r.version for r in fields.recent] == ["2"]
    assert last_error({"ok": False, "error": "boom"}).message == "boom"  # type: ignore[union-attr]
    assert last_error({"ok": True}) is None


def test_a_migration_of_a_version_a_set_holds_is_refused() -> None:
    from kubemigrate.controller.ordering.migrations import Peer, peer_of  # noqa: PLC0415
    from kubemigrate.controller.ordering.sets import set_claim, set_peer_of  # noqa: PLC0415

    the_set = set_peer_of(
        {
            "metadata": {"name": "app", "namespace": "ns", "uid": "u"},
            "spec": {"database": {"secretRef": {"name": "db"}}},
            "status": {"versions": ["001", "002", "bad version"]},
        }
    )

    def mig(version: str, secret: str = "db") -> Peer:
        return peer_of(
            {
                "metadata": {"name": f"m{version}", "namespace": "ns"},
                "spec": {"database": {"secretRef": {"name": secret}}, "version": version},
            }
        )

    clash = set_claim(mig("2"), [the_set])
    assert clash is not None and clash.permanent and "MigrationSet app" in clash.message
    assert set_claim(mig("3"), [the_set]) is None
    assert set_claim(mig("2", secret="other"), [the_set]) is None
