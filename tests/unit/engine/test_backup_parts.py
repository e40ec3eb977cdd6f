"""The pure parts of backup and restore: connection splitting, sidecars, digests, deletion."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubemigrate.engine.backup import dumpfile, pgtools
from kubemigrate.engine.backup.dumpfile import BackupMeta
from kubemigrate.engine.backup.rowcounts import compare
from kubemigrate.engine.pg.libpq import InvalidUrl, password_of, tool_connection


def test_the_password_goes_to_the_environment_not_the_command_line() -> None:
    conn = tool_connection("postgresql://app:s3%40cret@db.example:6432/orders?sslmode=require")
    assert "s3@cret" not in conn.dbname_arg and "s3%40cret" not in conn.dbname_arg
    assert "password" not in conn.dbname_arg
    assert "host=db.example" in conn.dbname_arg and "port=6432" in conn.dbname_arg
    assert "sslmode=require" in conn.dbname_arg and "connect_timeout=10" in conn.dbname_arg
    assert conn.env == {"PGPASSWORD": "s3@cret"}
    assert conn.secrets[0] == "s3@cret"  # then the whole string: both masked in messages
    assert conn.database == "orders"
    assert "s3@cret" not in repr(conn)


def test_no_password_no_environment() -> None:
    conn = tool_connection("postgresql://app@db/orders?connect_timeout=3")
    assert conn.env == {} and "connect_timeout=3" in conn.dbname_arg


def test_key_value_dsns_and_bad_urls() -> None:
    assert tool_connection("host=db dbname=x password=pw").env == {"PGPASSWORD": "pw"}
    assert password_of("postgresql://a:b@h/d") == "b"
    with pytest.raises(InvalidUrl) as bad:
        tool_connection("host=db password=s3cret dbname")
    assert "s3cret" not in str(bad.value)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            "pg_dump: error: query failed: ERROR:  permission denied for table secrets\n"
            "pg_dump: detail: Query was: LOCK TABLE public.secrets IN ACCESS SHARE MODE\n",
            "query failed: ERROR: permission denied for table secrets detail: Query was: "
            "LOCK TABLE public.secrets IN ACCESS SHARE MODE",
        ),
        (
            'pg_dump: error: connection to server at "db" failed: FATAL:  password authentication '
            'failed for user "app" password=hunter2 \n',
            'connection to server at "db" failed: FATAL: password authentication failed for user '
            '"app" password=****',
        ),
        ("", "pg_dump exited with an error"),
    ],
)
def test_error_line(stderr: str, expected: str) -> None:
    assert pgtools.error_line(stderr, "pg_dump", secrets=["hunter2"]) == expected


def test_error_line_is_shortened() -> None:
    assert len(pgtools.error_line("pg_dump: error: " + "x" * 5000, "pg_dump")) <= 600


def test_compare_counts() -> None:
    check = compare({"a.t": 3, "a.u": 1, "a.gone": 5}, {"a.t": 3, "a.u": 2, "a.extra": 9})
    assert not check.matched and check.tables == 3 and check.rows == 5
    assert [(m.table, m.expected, m.actual, m.missing) for m in check.mismatches] == [
        ("a.gone", 5, 0, True),
        ("a.u", 1, 2, False),
    ]
    assert check.summary() == (
        "3 tables, 5 rows; 2 tables differ: a.gone missing (expected 5 "
        "rows), a.u has 2 rows, expected 1"
    )
    assert compare({"a.t": 3}, {"a.t": 3}).summary() == "1 tables, 3 rows, all match"


def meta(**changes: object) -> BackupMeta:
    fields: dict[str, object] = {
        "format": "custom",
        "sha256": "ab" * 32,
        "size_bytes": 10,
        "database": "orders",
        "server_version": "15.18",
        "pg_dump_version": 15,
        "created_at": datetime(2024, 12, 20, 1, 2, 3, tzinfo=UTC),
        "duration_seconds": 1.5,
        "tables": {"public.t": 3},
    }
    fields.update(changes)
    return BackupMeta(**fields)  # type: ignore[arg-type]


def test_sidecar_round_trip(tmp_path: Path) -> None:
    dump = tmp_path / "x.dump"
    original = meta()
    dumpfile.sidecar_path(dump).write_text(original.to_json())
    assert dumpfile.read_sidecar(dump) == original
    assert dumpfile.read_sidecar(tmp_path / "none.dump") is None
    assert BackupMeta.from_json(meta(tables=None).to_json()).tables is None


def test_an_unreadable_sidecar_is_invalid(tmp_path: Path) -> None:
    dump = tmp_path / "x.dump"
    dumpfile.sidecar_path(dump).write_text("{not json")
    with pytest.raises(dumpfile.InvalidBackup):
        dumpfile.read_sidecar(dump)


def test_digest_of_a_file_and_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_bytes(b"x" * 3_000_000)
    assert dumpfile.digest(file) == (hashlib.sha256(b"x" * 3_000_000).hexdigest(), 3_000_000)
    d = tmp_path / "d"
    d.mkdir()
    (d / "toc.dat").write_bytes(b"toc")
    (d / "3.dat.gz").write_bytes(b"data")
    sha, size = dumpfile.digest(d)
    assert size == 7
    (d / "4.dat.gz").write_bytes(b"")
    assert dumpfile.digest(d)[0] != sha


def test_detect_format(tmp_path: Path) -> None:
    (tmp_path / "c").write_bytes(b"PGDMP\x01\x0e")
    (tmp_path / "p").write_text("--\n-- PostgreSQL database dump\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "toc.dat").write_bytes(b"PGDMP")
    assert [dumpfile.detect_format(tmp_path / n) for n in "cpd"] == ["custom", "plain", "directory"]
    with pytest.raises(dumpfile.InvalidBackup, match="does not exist"):
        dumpfile.detect_format(tmp_path / "missing")


def test_plain_completeness(tmp_path: Path) -> None:
    dump = tmp_path / "p.sql"
    dump.write_text(
        f"--\n{dumpfile.PLAIN_HEAD}\n--\n"
        + "SELECT 1;\n" * 2000
        + f"--\n{dumpfile.PLAIN_TAIL}\n--\n\n"
    )
    assert dumpfile.plain_is_complete(dump)
    dump.write_text(dump.read_text()[:-60])
    assert not dumpfile.plain_is_complete(dump)


def test_publish_puts_sidecar_and_dump_in_place(tmp_path: Path) -> None:
    final = tmp_path / "x.dump"
    temp = dumpfile.temporary_name(final)
    assert temp.parent == tmp_path and temp.name.startswith(".x.dump.partial-")
    temp.write_bytes(b"PGDMP")
    dumpfile.publish(temp, final, meta())
    assert final.read_bytes() == b"PGDMP"
    assert dumpfile.read_sidecar(final) == meta()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dump", "x.dump.meta.json"]


def test_removing_on_failure(tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt), dumpfile.removing_on_failure(partial):
        partial.write_bytes(b"half")
        raise KeyboardInterrupt
    assert not partial.exists()


def test_deleting_a_backup_removes_its_sidecar_and_partial_files(tmp_path: Path) -> None:
    dump = tmp_path / "x[1].dump"
    kept = [tmp_path / "y.dump", tmp_path / ".y.dump.partial-1234abcd"]
    for path in (
        dump,
        dumpfile.sidecar_path(dump),
        tmp_path / ".x[1].dump.partial-1234abcd",
        tmp_path / ".x[1].dump.meta.json.partial-5678abcd",
        *kept,
    ):
        path.write_text("x")
    seen: list[Path] = []
    removed = dumpfile.delete_backup(dump, on_removed=seen.append)
    assert [p.name for p in removed] == [
        "x[1].dump",
        "x[1].dump.meta.json",
        ".x[1].dump.meta.json.partial-5678abcd",
        ".x[1].dump.partial-1234abcd",
    ]
    assert seen == removed
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert dumpfile.delete_backup(dump) == []


def test_stale_partial_files_of_the_same_target_are_cleared_unless_held(tmp_path: Path) -> None:
    final = tmp_path / "app.dump"
    stale = dumpfile.temporary_name(final)
    stale.write_bytes(b"half a dump")
    stale_sidecar = dumpfile.temporary_name(dumpfile.sidecar_path(final))
    stale_sidecar.write_text("{}")
    stale_dir = dumpfile.temporary_name(final)
    stale_dir.mkdir()
    (stale_dir / "toc.dat").write_bytes(b"x")
    other = dumpfile.temporary_name(tmp_path / "other.dump")
    other.write_bytes(b"another target's")
    live = dumpfile.temporary_name(final)
    with dumpfile.claimed(live):
        removed = dumpfile.clear_stale(final)
        assert live.exists()
    assert sorted(removed) == sorted([stale, stale_sidecar, stale_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
