"""The fleet worker's parts that need no cluster and no database: finding the API server, the
targets file, a schema's connection string, and the ledger's conflict loop."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from psycopg import conninfo

from kubemigrate import engine, fleetledger
from kubemigrate.cli import build_parser, ledger_store, main
from kubemigrate.cli.fleet_worker import read_targets
from kubemigrate.cli.incluster import ApiError, InCluster, NotInCluster, object_path
from kubemigrate.cli.ledger_store import LedgerStore
from kubemigrate.controller.build import fleet_wave
from kubemigrate.controller.build.jobs import Owner
from kubemigrate.engine import InvalidUrl
from kubemigrate.models.migration_set import MigrationSetSpec
from kubemigrate.settings import Settings

# -- finding the API server --------------------------------------------------------------------


def sa_dir(tmp_path: Path, *, namespace: str | None = "tenants", ca: bool = True) -> Path:
    (tmp_path / "token").write_text("a-token\n")
    if namespace is not None:
        (tmp_path / "namespace").write_text(namespace)
    if ca:
        (tmp_path / "ca.crt").write_text("not read here")
    return tmp_path


def test_in_cluster_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    api = InCluster.from_environment(sa_dir(tmp_path))
    assert api.server == "https://10.0.0.1:6443"
    assert api.namespace == "tenants" and api.ca_file == tmp_path / "ca.crt"


def test_in_cluster_over_ipv6_without_a_namespace_or_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    api = InCluster.from_environment(sa_dir(tmp_path, namespace=None, ca=False))
    assert api.server == "https://[fd00::1]:443"
    assert api.namespace is None and api.ca_file is None


def test_not_in_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(NotInCluster):
        InCluster.from_environment(sa_dir(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(NotInCluster):
        InCluster.from_environment(tmp_path / "missing")


def test_object_paths_are_quoted() -> None:
    assert object_path("ns", "secrets", "tenant-a") == "/api/v1/namespaces/ns/secrets/tenant-a"
    assert object_path("ns", "configmaps", "a/b") == "/api/v1/namespaces/ns/configmaps/a%2Fb"


def test_the_worker_refuses_to_run_outside_a_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    argv = ["fleet-worker", str(tmp_path), "--targets-file", str(tmp_path / "t")]
    status = main([*argv, "--ledger", "l", "--secret-key", "url"])
    assert status == 1
    assert "not in a pod" in capsys.readouterr().err


# -- arguments and the targets file ------------------------------------------------------------


def test_a_mode_is_required_and_only_one() -> None:
    base = ["fleet-worker", "dir", "--targets-file", "t", "--ledger", "l"]
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(base)
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--secret-key", "url", "--schemas-secret", "db"])
    args = parser.parse_args([*base, "--schemas-secret", "db", "--target", "3"])
    assert (args.schemas_secret, args.schemas_key, args.target) == ("db", "url", "3")
    assert args.history_schema == "kubemigrate" and args.preflight is True
    assert not hasattr(args, "database_url")


@pytest.mark.parametrize(
    ("targets", "mode"),
    [
        ({"secretSelector": {"matchLabels": {"app": "orders"}}, "key": "dsn"}, ("dsn", None)),
        (
            {"schemas": {"database": {"secretRef": {"name": "shared"}}, "names": ["tenant_a"]}},
            (None, "shared"),
        ),
    ],
)
def test_the_operators_worker_job_parses(targets: dict[str, Any], mode: tuple[Any, ...]) -> None:
    """The args the operator's wave Job passes are the args this subcommand takes."""
    owner = Owner("MigrationSet", "orders", "shop", "uid-1", 7)
    spec = MigrationSetSpec.model_validate(
        {"targets": targets, "source": {"configMaps": [{"name": "orders-0"}]}, "dryRun": True}
    )
    wave = fleet_wave.Wave("abc123", 1, ["t-a", "t-b"], 2, 0)
    job = fleet_wave.worker_job(
        owner, spec, Settings(image="img:1"), wave=wave, keys={"orders-0": ["1_a.sql"]},
        target="3",
    )  # fmt: skip
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args([*container.get("command", [])[1:], *container["args"]])
    assert args.declared.name == "fleet-worker"
    assert (args.secret_key, args.schemas_secret) == mode
    assert args.ledger == fleet_wave.ledger_name(owner, "abc123", 1)
    assert str(args.targets_file) == fleet_wave.TARGETS_FILE
    assert (args.target, args.dry_run, args.resource_name) == ("3", True, "orders")
    assert args.termination_log is not None


def test_the_termination_log_says_why_the_worker_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    log = tmp_path / "log"
    argv = ["fleet-worker", str(tmp_path), "--targets-file", "t", "--ledger", "l"]
    assert main([*argv, "--secret-key", "url", "--termination-log", str(log)]) == 1
    result = json.loads(log.read_text())
    assert (result["ok"], result["reason"], result["ran"]) == (False, "NotInCluster", 0)


def test_read_targets_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "targets"
    path.write_text("tenant-a\n\n  tenant-b  \ntenant-c")
    assert read_targets(path) == ["tenant-a", "tenant-b", "tenant-c"]


# -- a schema's connection string --------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "option"),
    [
        ("tenant_a", "-c search_path=tenant_a"),
        ("Tenant A", '-c search_path="Tenant\\ A"'),
        ('we"ird\\', '-c search_path="we""ird\\\\"'),
    ],
)
def test_in_schema_sets_the_search_path(schema: str, option: str) -> None:
    url = "postgresql://app:pw@db:5432/shared?sslmode=require"
    params = conninfo.conninfo_to_dict(engine.in_schema(url, schema))
    assert params["options"] == option
    assert (params["host"], params["dbname"], params["password"]) == ("db", "shared", "pw")
    assert params["sslmode"] == "require"


def test_in_schema_keeps_the_urls_options() -> None:
    url = "host=db dbname=shared options='-c statement_timeout=5s'"
    params = conninfo.conninfo_to_dict(engine.in_schema(url, "t1"))
    assert params["options"] == "-c statement_timeout=5s -c search_path=t1"


@pytest.mark.parametrize("value", ["", "   ", "a password", "canary-token-123"])
def test_check_url_refuses_a_value_that_is_no_url_without_quoting_it(value: str) -> None:
    with pytest.raises(InvalidUrl) as caught:
        engine.check_url(value)
    assert caught.value.reason == "InvalidDatabaseUrl"
    assert not value.strip() or value not in str(caught.value)
    with pytest.raises(InvalidUrl):
        engine.in_schema(value or "x", "t1")


def test_check_url_takes_urls_and_key_value_strings() -> None:
    engine.check_url("postgresql://app@db/orders")
    engine.check_url("host=db dbname=orders")


# -- the ledger's conflict loop ----------------------------------------------------------------


class FakeApi:
    """A ConfigMap with a resourceVersion, replaced only at that version, as the API server
    does; ``race`` changes it between a worker's read and its replace, like another worker."""

    def __init__(self, data: dict[str, str]) -> None:
        self.cm: dict[str, Any] = {"metadata": {"name": "l", "resourceVersion": "1"}, "data": data}
        self.race: list[dict[str, str]] = []
        self.puts = 0

    def get(self, path: str) -> dict[str, Any]:
        return copy.deepcopy(self.cm)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.puts += 1
        if self.race:
            self._store({**self.cm["data"], **self.race.pop(0)})
        if body["metadata"]["resourceVersion"] != self.cm["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified")
        self._store(body["data"])
        return copy.deepcopy(self.cm)

    def _store(self, data: dict[str, str]) -> None:
        version = int(self.cm["metadata"]["resourceVersion"]) + 1
        self.cm = {"metadata": {"name": "l", "resourceVersion": str(version)}, "data": data}


def store(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> LedgerStore:
    monkeypatch.setattr(ledger_store.time, "sleep", lambda _: None)
    s = LedgerStore(InCluster("https://x", Path("t"), None, "ns"), "ns", "l")
    s.api = api  # type: ignore[assignment]
    return s


def test_a_claim_that_lost_a_race_takes_the_next_target(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi({**fleetledger.new_ledger(0), "keep": "other keys stay"})
    api.race = [{"next": "1", "running": "0"}]  # another worker claimed 0 first
    s = store(api, monkeypatch)
    assert s.claim(3) == 1
    assert api.puts == 2
    assert api.cm["data"]["running"] == "0-1" and api.cm["data"]["next"] == "2"
    assert api.cm["data"]["keep"] == "other keys stay"


def test_a_record_that_lost_a_race_keeps_the_other_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeApi({**fleetledger.new_ledger(0), "next": "2", "running": "0-1"})
    api.race = [{"succeeded": "1", "running": "0", "rows": "5"}]
    s = store(api, monkeypatch)
    s.record(0, name="t0", ok=True, version="3", rows=2, error=None)
    ledger = fleetledger.read_ledger(api.cm["data"])
    assert ledger.succeeded == {0, 1} and not ledger.running and ledger.rows == 7


def test_no_claim_once_halted_and_no_write(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi({**fleetledger.new_ledger(0), "next": "1", "failed": "0"})
    s = store(api, monkeypatch)
    assert s.claim(5) is None
    assert s.stopped == "halted" and api.puts == 0


def test_recording_twice_writes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi({**fleetledger.new_ledger(0), "next": "1", "running": "0"})
    s = store(api, monkeypatch)
    for _ in range(2):
        s.record(0, name="t0", ok=True, version="1", rows=0, error=None)
    assert api.puts == 1


def test_other_api_errors_stop_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi(fleetledger.new_ledger(0))

    def forbidden(path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise ApiError(403, "forbidden")

    api.put = forbidden  # type: ignore[method-assign]
    with pytest.raises(ApiError):
        store(api, monkeypatch).claim(3)


def test_a_ledger_that_never_settles_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi(fleetledger.new_ledger(0))
    api.race = [{"rows": str(i)} for i in range(ledger_store.CONFLICTS)]
    with pytest.raises(ApiError) as caught:
        store(api, monkeypatch).claim(3)
    assert caught.value.status == 409
    assert json.loads(api.cm["data"]["errors"]) == []
