"""Backups that cannot succeed: one clear line, no password anywhere, no file that looks valid."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from psycopg import sql

from harness import databases, postgres
from harness.ports import free_port
from integration.backup.backup_helpers import populate, query
from kubemigrate.engine.backup.dump import take_backup
from kubemigrate.engine.errors import BackupError, ConnectionFailed, ToolFailed, ToolTooOld

PASSWORD = "s3cret-Pa55/w@rd"
ROLE = postgres.PASSWORD_ROLE


def assert_clean(text: str) -> None:
    for form in (PASSWORD, quote(PASSWORD, safe=""), "s3cret"):
        assert form not in text, text


def with_login(url: str, user: str, password: str, *, port: int | None = None) -> str:
    parts = urlsplit(url)
    return parts._replace(
        netloc=f"{user}:{quote(password, safe='')}@{parts.hostname}:{port or parts.port}"
    ).geturl()


@pytest.fixture
def password_server(password_role: Callable[[str], str], database_url: str) -> str:
    """A database with data on the shared server, where ROLE must log in with PASSWORD."""
    password_role(PASSWORD)
    populate(database_url)
    return database_url


def test_the_right_password_reaches_pg_dump_but_never_its_command_line(
    password_server: str, tmp_path: Path
) -> None:
    url = with_login(password_server, ROLE, PASSWORD)
    result = take_backup(url, tmp_path / "app.dump")
    assert result.tables is not None and result.tables["public.orders"] == 50000
    assert_clean((tmp_path / "app.dump.meta.json").read_text())


def test_wrong_password(password_server: str, tmp_path: Path) -> None:
    url = with_login(password_server, ROLE, PASSWORD.replace("s3cret", "wrong"))
    with pytest.raises(ConnectionFailed) as failed:
        take_backup(url, tmp_path / "app.dump")
    message = str(failed.value)
    assert "password authentication failed" in message
    assert "\n" not in message
    assert "wrong" not in message
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server(tmp_path: Path) -> None:
    url = with_login("postgresql://x@127.0.0.1/app", "app", PASSWORD, port=free_port())
    with pytest.raises(ConnectionFailed) as failed:
        take_backup(url, tmp_path / "app.dump")
    message = str(failed.value)
    assert "cannot connect" in message and "\n" not in message
    assert_clean(message)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def limited_role(pg_admin_url: str, database_url: str) -> Iterator[str]:
    """A login role of its own (trust auth) that may connect but not read table secrets."""
    role = f"backup_ro_{uuid.uuid4().hex[:8]}"
    query(pg_admin_url, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)).as_string())
    query(database_url, "CREATE TABLE readable (id int); CREATE TABLE secrets (id int)")
    query(
        database_url,
        sql.SQL("GRANT SELECT ON readable TO {}").format(sql.Identifier(role)).as_string(),
    )
    try:
        yield (
            urlsplit(database_url)
            ._replace(netloc=f"{role}@{urlsplit(database_url).netloc.rsplit('@', 1)[-1]}")
            .geturl()
        )
    finally:
        databases.drop(pg_admin_url, database_url)
        query(
            pg_admin_url, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)).as_string()
        )


def test_pg_dump_failing_midway_leaves_nothing(limited_role: str, tmp_path: Path) -> None:
    out = tmp_path / "app.dump"
    with pytest.raises(ToolFailed) as failed:
        take_backup(limited_role, out, count_rows=False)
    assert "pg_dump failed" in str(failed.value)
    assert "permission denied" in str(failed.value)
    assert list(tmp_path.iterdir()) == []


def test_counting_failure_leaves_nothing(limited_role: str, tmp_path: Path) -> None:
    with pytest.raises(BackupError) as failed:
        take_backup(limited_role, tmp_path / "app.dump")
    assert "permission denied" in str(failed.value)
    assert list(tmp_path.iterdir()) == []


def test_pg_dump_older_than_the_server_is_refused(database_url: str, tmp_path: Path) -> None:
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    fake.chmod(0o755)
    with pytest.raises(ToolTooOld) as refused:
        take_backup(database_url, tmp_path / "app.dump", pg_dump=str(fake))
    assert "older than the server" in str(refused.value)
    assert not (tmp_path / "app.dump").exists()


def test_missing_pg_dump(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="not found"):
        take_backup(database_url, tmp_path / "app.dump", pg_dump=str(tmp_path / "nope"))


def test_an_existing_backup_is_kept_unless_overwrite(source_url: str, tmp_path: Path) -> None:
    out = tmp_path / "app.dump"
    first = take_backup(source_url, out)
    with pytest.raises(BackupError, match="already exists"):
        take_backup(source_url, out)
    assert out.read_bytes()[:5] == b"PGDMP"
    query(source_url, "DELETE FROM orders WHERE id > 100")
    second = take_backup(source_url, out, overwrite=True)
    assert second.sha256 != first.sha256
    assert second.tables is not None and second.tables["public.orders"] == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.dump", "app.dump.meta.json"]
