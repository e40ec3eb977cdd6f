"""kubemigrate manifests' pure part: files packed into ConfigMaps under the limit, and the set."""

from __future__ import annotations

import pytest
import yaml

from kubemigrate.cli.bundle import (
    BundleError,
    SetOptions,
    SourceFile,
    content_hash,
    manifests,
    pack,
)
from kubemigrate.cli.manifests import to_yaml


def files(count: int, size: int = 100) -> list[SourceFile]:
    return [SourceFile(f"{i:04d}_m.up.sql", "x" * size) for i in range(count)]


def test_every_group_fits_the_budget_and_keeps_every_file_once_in_name_order() -> None:
    given = files(50, 1000)
    groups = pack(list(reversed(given)), budget=10_000)
    assert all(sum(f.size for f in g) <= 10_000 for g in groups)
    assert [f for g in groups for f in g] == given
    assert len(groups) == 6  # 9 files of 1013 bytes each per group


def test_a_file_larger_than_a_configmap_is_refused_with_its_name() -> None:
    with pytest.raises(BundleError, match=r"0001_m\.up\.sql: 5013 bytes.*source\.image"):
        pack([*files(1), SourceFile("0001_m.up.sql", "y" * 5000)], budget=4000)


def test_an_empty_directory_and_a_bad_key_are_refused() -> None:
    with pytest.raises(BundleError, match="no migration files"):
        pack([], budget=100)
    with pytest.raises(BundleError, match="not a valid ConfigMap key"):
        pack([SourceFile("001 a.sql", "")], budget=100)


def test_the_hash_changes_with_any_name_or_text_and_is_not_fooled_by_joining() -> None:
    base = content_hash([SourceFile("a", "bc")])
    assert base != content_hash([SourceFile("ab", "c")])
    assert base != content_hash([SourceFile("a", "bd")])
    assert base == content_hash([SourceFile("a", "bc")])


def test_split_manifests_name_each_configmap_and_the_set_lists_them_all() -> None:
    options = SetOptions(name="orders", secret="orders-db", namespace="prod", budget=3000)
    docs = manifests(files(10, 1000), options)
    configmaps, migration_set = docs[:-1], docs[-1]
    names = [c["metadata"]["name"] for c in configmaps]
    assert len(names) == 5
    assert all(n.startswith(f"orders-migrations-{i + 1}-") for i, n in enumerate(names))
    assert all(c["immutable"] is True for c in configmaps)
    assert migration_set["kind"] == "MigrationSet"
    assert migration_set["metadata"] == {"name": "orders", "namespace": "prod"}
    assert migration_set["spec"] == {
        "database": {"secretRef": {"name": "orders-db", "key": "url"}},
        "source": {"configMaps": [{"name": n} for n in names]},
    }


def test_stable_names_have_no_hash_and_are_not_immutable() -> None:
    options = SetOptions(name="orders", secret="db", hashed_names=False, target_version="7")
    configmap, migration_set = manifests(files(2), options)
    assert configmap["metadata"]["name"] == "orders-migrations"
    assert "immutable" not in configmap
    assert migration_set["spec"]["targetVersion"] == "7"


@pytest.mark.parametrize("name", ["Orders", "-orders", "orders_", "o" * 64, ""])
def test_names_the_api_would_refuse_are_refused_first(name: str) -> None:
    with pytest.raises(BundleError, match="--name"):
        manifests(files(1), SetOptions(name=name, secret="db"))


def test_sql_reads_as_a_block_and_survives_a_round_trip() -> None:
    sql = "CREATE TABLE t (url text DEFAULT 'postgresql://u:p@h/db');\n-- trailing\n"
    text = to_yaml(manifests([SourceFile("1_t.up.sql", sql)], SetOptions(name="s", secret="d")))
    assert "1_t.up.sql: |" in text
    configmap = next(yaml.safe_load_all(text))
    assert configmap["data"]["1_t.up.sql"] == sql
