"""Verification catches truncated, corrupted and altered backups; a test restore counts rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from integration.backup.backup_helpers import ROWS, fingerprint, query
from kubemigrate.engine.backup import dumpfile, verify
from kubemigrate.engine.backup.dump import take_backup
from kubemigrate.engine.backup.restore import restore_backup
from kubemigrate.engine.errors import InvalidBackup


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("fmt", ["custom", "plain", "directory"])
def test_a_good_backup_verifies(fmt: dumpfile.Format, source_url: str, backups: Path) -> None:
    backup = take_backup(source_url, backups / f"app.{fmt}", format=fmt)
    result = verify.verify_backup(backup.path)
    assert result.ok, result.problems
    assert result.format == fmt
    assert "sha256 and size match the sidecar" in result.checks


def test_a_truncated_dump_fails(source_url: str, backups: Path) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    truncate(backup.path)
    result = verify.verify_backup(backup.path)
    assert not result.ok
    assert "truncated" in result.problems[0]


def test_a_truncated_dump_without_sidecar_fails_the_full_read(
    source_url: str, backups: Path
) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    dumpfile.sidecar_path(backup.path).unlink()
    assert verify.verify_backup(backup.path).ok  # the whole archive reads
    truncate(backup.path, 0.7)
    result = verify.verify_backup(backup.path)
    assert not result.ok
    assert "pg_restore" in result.problems[0] or "reading" in result.problems[0]


def test_a_flipped_byte_fails(source_url: str, backups: Path) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    data = bytearray(backup.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.path.write_bytes(bytes(data))
    result = verify.verify_backup(backup.path)
    assert not result.ok
    assert "sha256" in result.problems[0]


def test_a_truncated_plain_dump_fails(source_url: str, backups: Path) -> None:
    backup = take_backup(source_url, backups / "app.sql", format="plain")
    dumpfile.sidecar_path(backup.path).unlink()
    truncate(backup.path, 0.9)
    result = verify.verify_backup(backup.path)
    assert not result.ok
    assert "complete" in result.problems[0]


def test_not_a_backup(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_text("hello\n")
    assert not verify.verify_backup(junk).ok
    assert not verify.verify_backup(tmp_path / "missing.dump").ok


def test_a_corrupt_dump_is_never_restored(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    truncate(backup.path)
    target = new_database()
    with pytest.raises(InvalidBackup):
        restore_backup(backup.path, target)
    assert fingerprint(target) == fingerprint(new_database())


def test_test_restore_compares_row_counts(
    source_url: str, backups: Path, pg_admin_url: str
) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    restored = verify.trial_restore(backup.path, pg_admin_url)
    assert restored.check is not None and restored.check.matched
    assert restored.tables == ROWS
    assert restored.database.startswith(verify.SCRATCH_PREFIX)
    assert query(
        pg_admin_url, "SELECT count(*) FROM pg_database WHERE datname = %s", (restored.database,)
    ) == [(0,)]


def test_test_restore_reports_mismatches(source_url: str, backups: Path, pg_admin_url: str) -> None:
    backup = take_backup(source_url, backups / "app.dump")
    sidecar = dumpfile.sidecar_path(backup.path)
    meta = json.loads(sidecar.read_text())
    meta["tables"]["public.orders"] = 49999
    meta["tables"]["public.gone"] = 3
    sidecar.write_text(json.dumps(meta))

    restored = verify.trial_restore(backup.path, pg_admin_url)

    check = restored.check
    assert check is not None and not check.matched
    assert {(m.table, m.expected, m.actual, m.missing) for m in check.mismatches} == {
        ("public.orders", 49999, 50000, False),
        ("public.gone", 3, 0, True),
    }
    assert "2 tables differ" in check.summary()
