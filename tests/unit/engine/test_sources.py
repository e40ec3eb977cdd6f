"""Loading a migrations directory: the naming styles, directives, and every error at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubemigrate.engine.migrate.checksum import sql_checksum
from kubemigrate.engine.migrate.sources import (
    MigrationSource,
    SourceError,
    check_unique,
    load_directory,
    parse_directives,
)


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_golang_migrate_style_with_down_and_verify(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "002_add_email.up.sql": "ALTER TABLE users ADD email text;",
            "002_add_email.down.sql": "ALTER TABLE users DROP email;",
            "002_add_email.verify.sql": "SELECT email FROM users LIMIT 0;",
            "001_create_users.up.sql": "CREATE TABLE users (id int);",
        },
    )
    first, second = load_directory(tmp_path)
    assert (first.version, first.description, first.down_sql) == ("001", "create users", None)
    assert second.version == "002"
    assert second.down_sql == "ALTER TABLE users DROP email;"
    assert second.verify_sql == "SELECT email FROM users LIMIT 0;"
    assert second.rollback_available and not first.rollback_available
    assert second.path == str(tmp_path / "002_add_email.up.sql")
    assert second.checksum == sql_checksum("ALTER TABLE users ADD email text;")


def test_flyway_style(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "V1__init.sql": "CREATE TABLE a (id int);",
            "V1_1__second_step.sql": "CREATE TABLE b (id int);",
            "U1_1__second_step.sql": "DROP TABLE b;",
            "V2.0.1__third.sql": "",
        },
    )
    sources = load_directory(tmp_path)
    assert [s.version for s in sources] == ["1", "1.1", "2.0.1"]
    assert sources[1].description == "second step"
    assert sources[1].down_sql == "DROP TABLE b;"


def test_plain_sql_is_an_up_file_and_versions_sort_numerically(tmp_path: Path) -> None:
    write(tmp_path, {"10_ten.sql": "", "2_two.sql": "", "2024.12.20.1_dated.sql": "", "3.sql": ""})
    assert [s.version for s in load_directory(tmp_path)] == ["2", "3", "10", "2024.12.20.1"]


def test_empty_file_is_a_migration_that_changes_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"001_nothing.up.sql": ""})
    (source,) = load_directory(tmp_path)
    assert source.up_sql == ""
    assert source.transactional


def test_non_sql_hidden_and_subdirectories_are_ignored(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"README.md": "# notes", "001_a.up.sql": "", ".#001_a.up.sql": "junk", "notes.txt": ""},
    )
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "garbage.sql").write_text("")
    assert [s.version for s in load_directory(tmp_path)] == ["001"]


def test_crlf_file_has_the_same_checksum_as_lf(tmp_path: Path) -> None:
    (tmp_path / "001_a.up.sql").write_bytes(b"SELECT 1;\r\nSELECT 2;\r\n")
    (source,) = load_directory(tmp_path)
    assert source.checksum == sql_checksum("SELECT 1;\nSELECT 2;\n")


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "001_a.up.sql").write_bytes(b"\xef\xbb\xbfSELECT 1;")
    (source,) = load_directory(tmp_path)
    assert source.up_sql == "SELECT 1;"


@pytest.mark.parametrize(
    ("header", "transactional", "lock", "statement"),
    [
        ("-- kubemigrate: no-transaction\n", False, None, None),
        ("-- KubeMigrate:   no-transaction  \n", False, None, None),
        ("-- kubemigrate: lock-timeout=5s, statement-timeout=30m\n", True, 5.0, 1800.0),
        ("-- kubemigrate: no-transaction\n-- kubemigrate: lock-timeout=500ms\n", False, 0.5, None),
        ("-- a comment first\n-- kubemigrate: no-transaction\n", True, None, None),
        ("", True, None, None),
    ],
)
def test_directives(
    header: str, transactional: bool, lock: float | None, statement: float | None
) -> None:
    d = parse_directives(header + "CREATE INDEX CONCURRENTLY i ON t (a);")
    assert d.transactional is transactional
    assert (d.lock_timeout, d.statement_timeout) == (lock, statement)


def test_no_transaction_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "001_idx.up.sql": (
                "-- kubemigrate: no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);"
            ),
            "001_idx.down.sql": "-- kubemigrate: no-transaction\nDROP INDEX CONCURRENTLY i;",
        },
    )
    (source,) = load_directory(tmp_path)
    assert not source.transactional


@pytest.mark.parametrize(
    ("files", "fragments"),
    [
        ({"001_a.up.sql": "", "1_b.up.sql": ""}, ["duplicate version 1", "001_a.up.sql"]),
        ({"001_a.up.sql": "", "001_a.sql": ""}, ["duplicate version 001"]),
        ({"1.0_a.up.sql": "", "1_b.up.sql": ""}, ["duplicate version"]),
        ({"V1__a.sql": "", "001_b.up.sql": ""}, ["duplicate version"]),
        ({"create_users.sql": ""}, ["create_users.sql", "matches no migration pattern"]),
        ({"R__views.sql": ""}, ["R__views.sql", "repeatable"]),
        ({"001_a.down.sql": ""}, ["001_a.down.sql", "no up file for version 001"]),
        ({"U3__a.sql": ""}, ["U3__a.sql", "no up file for version 3"]),
        ({"002_a.verify.sql": ""}, ["002_a.verify.sql", "no up file"]),
        (
            {"001_a.up.sql": "-- kubemigrate: fast\nSELECT 1;"},
            ["001_a.up.sql", "unknown directive"],
        ),
        ({"001_a.up.sql": "-- kubemigrate: lock-timeout=soon\n"}, ["001_a.up.sql", "duration"]),
        (
            {"001_a.up.sql": "", "001_a.down.sql": "-- kubemigrate: no-transaction\n"},
            ["001_a.down.sql", "directives differ"],
        ),
    ],
)
def test_problems_are_reported_with_file_names(
    tmp_path: Path, files: dict[str, str], fragments: list[str]
) -> None:
    write(tmp_path, files)
    with pytest.raises(SourceError) as caught:
        load_directory(tmp_path)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_all_problems_are_collected_in_one_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "001_a.up.sql": "",
            "1_b.up.sql": "",
            "junk.sql": "",
            "005_x.down.sql": "",
            "010_ok.up.sql": "",
        },
    )
    with pytest.raises(SourceError) as caught:
        load_directory(tmp_path)
    assert len(caught.value.problems) == 3
    assert isinstance(caught.value, ValueError)
    assert "3 problems" in str(caught.value)


def test_not_utf8_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "001_a.up.sql").write_bytes(b"SELECT '\xff';")
    with pytest.raises(SourceError, match=r"001_a.up.sql: not valid UTF-8"):
        load_directory(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        load_directory(tmp_path / "nope")


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(SourceError, match="not a directory"):
        load_directory(tmp_path / "f")


def test_empty_directory_has_no_migrations(tmp_path: Path) -> None:
    assert load_directory(tmp_path) == []


def test_source_validates_its_version() -> None:
    with pytest.raises(ValueError, match="invalid version"):
        MigrationSource(version="x1", description="", up_sql="")


def test_check_unique_sorts_and_refuses_duplicates() -> None:
    a, b = MigrationSource("10", "a", ""), MigrationSource("9", "b", "")
    assert check_unique([a, b]) == [b, a]
    with pytest.raises(SourceError, match="duplicate version"):
        check_unique([a, MigrationSource("010", "c", "")])
