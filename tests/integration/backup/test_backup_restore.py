"""Back up a real database, restore it (over itself, into a fresh database), get the same data."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from integration.backup.backup_helpers import ROWS, fingerprint, query
from kubemigrate.engine.backup import dumpfile
from kubemigrate.engine.backup.dump import take_backup
from kubemigrate.engine.backup.restore import restore_backup
from kubemigrate.engine.errors import TargetNotEmpty, ToolFailed, UnsupportedOption


def test_backup_writes_the_dump_and_its_sidecar(source_url: str, backups: Path) -> None:
    result = take_backup(source_url, backups / "app.dump")

    assert result.path == backups / "app.dump"
    assert result.format == "custom"
    assert result.tables == ROWS
    assert result.duration_seconds > 0
    assert result.started_at <= result.completed_at
    assert result.server_version.split(".")[0].isdigit()
    assert (result.sha256, result.size_bytes) == dumpfile.digest(result.path)
    assert result.path.read_bytes().startswith(b"PGDMP")
    sidecar = json.loads((backups / "app.dump.meta.json").read_text())
    assert sidecar["sha256"] == result.sha256
    assert sidecar["size_bytes"] == result.size_bytes
    assert sidecar["tables"] == ROWS
    assert sidecar["format"] == "custom"
    assert sidecar["database"] == result.database
    assert "postgresql://" not in json.dumps(sidecar)
    assert sorted(p.name for p in backups.iterdir()) == ["app.dump", "app.dump.meta.json"]


def test_restore_with_clean_over_the_same_database(source_url: str, backups: Path) -> None:
    before = fingerprint(source_url)
    backup = take_backup(source_url, backups / "app.dump")
    query(source_url, "DROP VIEW big_spenders; DROP TABLE orders")
    query(
        source_url,
        "DELETE FROM customers WHERE id > 10; INSERT INTO audit.events "
        "VALUES (9999, 'late', now()); SELECT setval('invoice_numbers', 5000)",
    )

    restored = restore_backup(backup.path, source_url, clean=True)

    assert fingerprint(source_url) == before
    assert restored.check is not None and restored.check.matched
    assert restored.tables == ROWS
    assert restored.check.rows == sum(ROWS.values())


def test_restore_into_a_fresh_database(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    target = new_database()

    restored = restore_backup(backup.path, target)

    assert fingerprint(target) == fingerprint(source_url)
    assert restored.check is not None and restored.check.matched
    assert restored.database == target.rsplit("/", 1)[1]


@pytest.mark.parametrize("fmt", ["plain", "directory"])
def test_other_formats_round_trip(
    fmt: dumpfile.Format, source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    backup = take_backup(source_url, backups / f"app.{fmt}", format=fmt)
    assert dumpfile.detect_format(backup.path) == fmt
    assert (backup.sha256, backup.size_bytes) == dumpfile.digest(backup.path)
    target = new_database()

    restored = restore_backup(backup.path, target)

    assert fingerprint(target) == fingerprint(source_url)
    assert restored.check is not None and restored.check.matched


def test_parallel_directory_backup(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    backup = take_backup(source_url, backups / "app.dir", format="directory", jobs=2)
    target = new_database()
    restore_backup(backup.path, target)
    assert fingerprint(target) == fingerprint(source_url)


def test_counts_and_dump_share_one_snapshot(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    """Rows committed while the backup runs are in neither the counts nor the dump."""
    done: list[object] = []
    with psycopg.connect(source_url, autocommit=True) as writer:
        # Hold a lock the backup must wait for, so the insert below commits mid-backup.
        writer.execute("BEGIN")
        writer.execute("LOCK TABLE audit.events IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(
            target=lambda: done.append(take_backup(source_url, backups / "app.dump"))
        )
        thread.start()
        thread.join(timeout=2)
        writer.execute("INSERT INTO customers (name) VALUES ('late arrival')")
        writer.execute("COMMIT")
        thread.join(timeout=60)
    assert done, "the backup did not finish"
    assert query(source_url, "SELECT count(*) FROM customers")[0][0] == 1001
    sidecar = json.loads((backups / "app.dump.meta.json").read_text())
    assert sidecar["tables"]["public.customers"] == ROWS["public.customers"]
    target = new_database()
    restored = restore_backup(backups / "app.dump", target)
    assert restored.check is not None and restored.check.matched
    assert restored.tables["public.customers"] == ROWS["public.customers"]


def test_restore_refuses_a_database_that_is_not_empty(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    target = new_database()
    query(target, "CREATE TABLE precious (id int); INSERT INTO precious VALUES (42)")
    before = fingerprint(target)

    with pytest.raises(TargetNotEmpty) as refused:
        restore_backup(backup.path, target)

    assert "not empty" in str(refused.value) and "public.precious" in str(refused.value)
    assert fingerprint(target) == before


@pytest.mark.parametrize(
    "objects",
    [
        "CREATE SCHEMA reports",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TYPE mood AS ENUM ('ok')",
        "CREATE SEQUENCE s",
        "CREATE VIEW v AS SELECT 1 AS one",
    ],
)
def test_what_counts_as_not_empty(
    objects: str, new_database: Callable[[], str], backups: Path, source_url: str
) -> None:
    backup = take_backup(source_url, backups / "app.dump", count_rows=False)
    target = new_database()
    query(target, objects)
    with pytest.raises(TargetNotEmpty):
        restore_backup(backup.path, target)


def test_extension_objects_do_not_make_a_database_non_empty(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    target = new_database()
    query(target, "CREATE EXTENSION IF NOT EXISTS pg_trgm")  # functions and types in public
    restored = restore_backup(backup.path, target)
    assert restored.check is not None and restored.check.matched


def test_a_failed_restore_leaves_the_target_as_it_was(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    target = new_database()
    # Objects of the backup's names, plus one the restore's DROP of orders fails on.
    query(
        target,
        """
        CREATE TABLE customers (id int PRIMARY KEY, name text);
        INSERT INTO customers VALUES (1, 'kept');
        CREATE TABLE orders (id int);
        CREATE SCHEMA other;
        CREATE VIEW other.depends_on_orders AS SELECT * FROM public.orders;
    """,
    )
    before = fingerprint(target)

    with pytest.raises(ToolFailed) as failed:
        restore_backup(backup.path, target, clean=True)

    assert "restore into database" in str(failed.value)
    assert "\n" not in str(failed.value)
    assert fingerprint(target) == before


def test_plain_backups_cannot_be_restored_with_clean(source_url: str, backups: Path) -> None:
    backup = take_backup(source_url, backups / "app.sql", format="plain")
    with pytest.raises(UnsupportedOption):
        restore_backup(backup.path, source_url, clean=True)


def test_restore_without_sidecar_still_counts(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    dumpfile.sidecar_path(backup.path).unlink()
    restored = restore_backup(backup.path, new_database())
    assert restored.check is None
    assert restored.tables == ROWS
