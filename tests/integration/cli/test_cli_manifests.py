"""``kubemigrate manifests`` against the real API server: a directory too big for one ConfigMap is
split into ConfigMaps the API accepts, and reading them back gives the same migrations."""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.kube import Kubectl
from integration.cli.cli_helpers import run_cli
from kubemigrate.engine import load_directory


def write_directory(directory: Path, count: int) -> None:
    """count migrations of about 12 KB each (so about 3 ConfigMaps), with downs and a no-tx one."""
    directory.mkdir()
    filler = "".join(
        f"-- line {i:05d} of a long comment that pads the file out\n" for i in range(200)
    )
    for i in range(1, count + 1):
        up = f"CREATE TABLE t{i} (id bigint PRIMARY KEY, note text DEFAULT 'a\r\nb');\n{filler}"
        (directory / f"{i:04d}_table_{i}.up.sql").write_text(up)
        (directory / f"{i:04d}_table_{i}.down.sql").write_text(f"DROP TABLE t{i};\n")
    (directory / f"{count + 1:04d}_index.up.sql").write_text(
        "-- kubemigrate: no-transaction\nCREATE INDEX CONCURRENTLY i1 ON t1 (note);\n"
    )


def test_a_split_directory_is_accepted_by_the_api_and_reads_back_the_same(
    tmp_path: Path, kubectl: Kubectl, namespace: str
) -> None:
    source = tmp_path / "migrations"
    write_directory(source, 240)
    result = run_cli(
        "manifests", str(source), "--name", "orders", "--secret", "db", "-n", namespace
    )
    assert result.returncode == 0, result
    documents = list(yaml.safe_load_all(result.stdout))
    configmaps = [d for d in documents if d["kind"] == "ConfigMap"]
    assert len(configmaps) >= 3
    assert documents[-1]["spec"]["source"]["configMaps"] == [
        {"name": c["metadata"]["name"]} for c in configmaps
    ]

    applied = kubectl.apply(yaml.safe_dump_all(configmaps), "-n", namespace, "--server-side")
    assert applied.stdout.count("serverside-applied") == len(configmaps), applied.stdout

    back = tmp_path / "back"
    back.mkdir()
    listed = kubectl.json(
        "get", "configmaps", "-n", namespace, "-l", "kubemigrate.dev/migration-set=orders"
    )
    assert len(listed["items"]) == len(configmaps)
    for item in listed["items"]:
        assert item["immutable"] is True
        for name, text in item["data"].items():
            (back / name).write_bytes(text.encode())
    expected = [
        (s.version, s.checksum, s.down_sql, s.transactional) for s in load_directory(source)
    ]
    actual = [(s.version, s.checksum, s.down_sql, s.transactional) for s in load_directory(back)]
    assert actual == expected


def test_a_directory_that_would_not_load_prints_nothing(tmp_path: Path) -> None:
    source = tmp_path / "migrations"
    source.mkdir()
    (source / "001_a.up.sql").write_text("SELECT 1;\n")
    (source / "001_b.up.sql").write_text("SELECT 2;\n")
    result = run_cli("manifests", str(source), "--name", "orders", "--secret", "db")
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "duplicate version 001" in result.stderr
