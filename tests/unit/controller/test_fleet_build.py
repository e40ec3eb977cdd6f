"""The pure parts of a fleet rollout: the wave's objects, and the fold of its ledgers."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from kubemigrate import fleetledger
from kubemigrate.controller.build import fleet_wave
from kubemigrate.controller.build.fleet_status import WaveView, fold, remaining
from kubemigrate.controller.build.jobs import Owner
from kubemigrate.models.fleet import SecretSelector
from kubemigrate.models.migration_set import MigrationSetSpec
from kubemigrate.settings import Settings

OWNER = Owner("MigrationSet", "orders", "shop", "uid-1", 7)
SOURCE = {"configMaps": [{"name": "orders-0"}]}


def spec(**extra: object) -> MigrationSetSpec:
    body = {
        "targets": {"secretSelector": {"matchLabels": {"app": "orders"}}},
        "source": SOURCE,
        **extra,
    }
    return MigrationSetSpec.model_validate(body)


def ledger(**kw: object) -> fleetledger.Ledger:
    return fleetledger.read_ledger(
        fleetledger.ledger_data(fleetledger.Ledger(**kw))  # type: ignore[arg-type]
    )


def test_wave_objects_name_exactly_the_wave_and_its_secrets() -> None:
    wave = fleet_wave.Wave("abc123", 2, ["t-b", "t-a"], 2, 1)
    name = fleet_wave.wave_name(OWNER, "abc123", 2)
    role = fleet_wave.role(OWNER, wave, ["t-b", "t-a"])
    secrets, configmaps = role["rules"]
    assert secrets == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
        "resourceNames": ["t-a", "t-b"],
    }
    assert configmaps["resourceNames"] == [f"{name}-ledger"]
    assert configmaps["verbs"] == ["get", "update"]
    binding = fleet_wave.role_binding(OWNER, wave)
    assert binding["roleRef"]["name"] == name
    assert (
        binding["subjects"][0]["name"]
        == fleet_wave.service_account(OWNER, wave)["metadata"]["name"]
    )
    targets = fleet_wave.targets_configmap(OWNER, wave)
    assert targets["data"]["targets"] == "t-b\nt-a"  # the wave's order, as given
    assert targets["immutable"] is True
    data = fleet_wave.ledger_configmap(OWNER, wave)
    assert fleetledger.read_ledger(data["data"]).budget == 1
    assert data["metadata"]["annotations"][fleet_wave.GENERATION] == "7"


def test_the_worker_job_has_its_wave_identity_and_no_database_url() -> None:
    wave = fleet_wave.Wave("abc123", 0, ["t-a", "t-b", "t-c"], 2, 0)
    job = fleet_wave.worker_job(
        OWNER,
        spec(),
        Settings(image="img:1"),
        wave=wave,
        keys={"orders-0": ["1_a.up.sql"]},
        target="3",
    )
    pod = job["spec"]["template"]["spec"]
    name = fleet_wave.wave_name(OWNER, "abc123", 0)
    assert job["metadata"]["name"] == pod["serviceAccountName"] == name
    assert pod["automountServiceAccountToken"] is True
    container = pod["containers"][0]
    assert container["args"][0] == "fleet-worker"
    assert "--ledger" in container["args"] and f"{name}-ledger" in container["args"]
    assert container["args"][container["args"].index("--secret-key") + 1] == "url"
    assert not any(e["name"] == "DATABASE_URL" for e in container["env"])
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (2, 2)
    assert {"name": "targets", "configMap": {"name": f"{name}-targets"}} in pod["volumes"]


def test_a_schema_fleet_worker_reads_the_one_shared_secret() -> None:
    schemas = spec(
        targets={"schemas": {"database": {"secretRef": {"name": "shared"}}, "names": ["tenant_a"]}}
    )
    wave = fleet_wave.Wave("k", 1, ["tenant_a"], 1, 0)
    args = fleet_wave.worker_job(
        OWNER, schemas, Settings(image="img:1"), wave=wave, keys={}, target=None
    )["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--schemas-secret") + 1] == "shared"


def test_wave_names_fit_every_object() -> None:
    long = Owner("MigrationSet", "o" * 60, "shop", "uid", 1)
    name = fleet_wave.wave_name(long, "0123456789", 12)
    assert len(fleet_wave.targets_name(long, "0123456789", 12)) <= 63
    assert len(name) <= 63 and name != fleet_wave.wave_name(long, "0123456789", 13)


def test_the_fold_takes_each_targets_latest_outcome() -> None:
    first = WaveView(
        0,
        ["a", "b", "c"],
        ledger(
            next=3,
            succeeded=frozenset({0}),
            failed=frozenset({1}),
            running=frozenset({2}),
            errors=(fleetledger.TargetError("b", "2", "42P07", "relation exists"),),
            versions={"3": 1, "2": 1},
        ),
        generation=1,
        closed=True,
    )
    second = WaveView(1, ["b", "d"], ledger(next=1, running=frozenset({0})), 2, False)
    done = fold([second, first])
    assert done.succeeded == {"a"}
    assert done.running == {"b"}  # retried in the open wave
    assert done.failed == {}
    assert "c" not in done.running  # held by a worker of a closed wave: not done, not running
    counts = done.counts(["a", "b", "c", "d", "e"])
    assert (counts.total, counts.succeeded, counts.running, counts.failed, counts.pending) == (
        5,
        1,
        1,
        0,
        3,
    )
    assert remaining(["a", "b", "c", "d", "e"], done, 2) == ["c", "d", "e"]


def test_failed_targets_wait_for_a_spec_change() -> None:
    wave = WaveView(
        0,
        ["a", "b"],
        ledger(
            next=2,
            succeeded=frozenset({0}),
            failed=frozenset({1}),
            errors=(fleetledger.TargetError("b", None, None, "boom"),),
        ),
        generation=3,
        closed=True,
    )
    done = fold([wave])
    assert [e.name for e in done.errors] == ["b"]
    assert remaining(["a", "b"], done, 3) == []
    assert remaining(["a", "b"], done, 4) == ["b"]


def test_the_most_common_version_is_the_fleets_version() -> None:
    wave = WaveView(0, ["a", "b", "c"], ledger(versions={"3": 2, "1": 1}), 1, False)
    assert fold([wave]).version == "3"


@pytest.mark.parametrize(
    "body",
    [
        {"database": {"secretRef": {"name": "db"}}},
        {"rollout": {"maxParallel": 0}},
        {"targets": {"secretSelector": {}}},
        {"backup": {"storage": {"persistentVolumeClaim": {"claimName": "x"}}}},
        {"targets": {"schemas": {"database": {"secretRef": {"name": "db"}}}}},
    ],
)
def test_bad_fleet_specs_are_refused(body: dict[str, object]) -> None:
    base = {"targets": {"secretSelector": {"matchLabels": {"app": "x"}}}, "source": SOURCE}
    with pytest.raises(ValidationError):
        MigrationSetSpec.model_validate({**base, **body})


def test_a_selector_in_the_apis_query_form() -> None:
    selector = SecretSelector.model_validate(
        {
            "matchLabels": {"tier": "db", "app": "orders"},
            "matchExpressions": [
                {"key": "region", "operator": "In", "values": ["eu", "us"]},
                {"key": "retired", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.as_string() == "app=orders,tier=db,region in (eu,us),!retired"


def test_a_ledger_written_by_the_operator_is_read_back() -> None:
    data = fleetledger.new_ledger(2, paused=True)
    back = fleetledger.read_ledger(data)
    assert (back.budget, back.paused, back.next) == (2, True, 0)
    assert json.loads(data["errors"]) == []
