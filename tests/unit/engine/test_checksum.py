"""The drift checksum: stable, prefixed, and blind only to line-ending conversions."""

from __future__ import annotations

import hashlib

import pytest

from kubemigrate.engine.migrate.checksum import sql_checksum


def test_format_is_prefixed_sha256_of_utf8() -> None:
    sql = "CREATE TABLE t (id int);\n"
    assert sql_checksum(sql) == "sha256:" + hashlib.sha256(sql.encode()).hexdigest()


def test_empty_sql_has_a_checksum() -> None:
    assert sql_checksum("") == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_crlf_reads_as_lf() -> None:
    assert sql_checksum("SELECT 1;\r\nSELECT 2;\r\n") == sql_checksum("SELECT 1;\nSELECT 2;\n")


@pytest.mark.parametrize(
    "edited",
    [
        "CREATE TABLE t (id int);",  # trailing newline removed
        "CREATE TABLE t (id  int);\n",  # whitespace
        "CREATE TABLE t (id int); -- note\n",  # comment
        "create table t (id int);\n",  # case
    ],
)
def test_any_other_change_is_drift(edited: str) -> None:
    assert sql_checksum(edited) != sql_checksum("CREATE TABLE t (id int);\n")


def test_non_ascii_is_hashed_as_utf8() -> None:
    sql = "COMMENT ON TABLE t IS 'café';"
    assert sql_checksum(sql).endswith(hashlib.sha256(sql.encode("utf-8")).hexdigest())
