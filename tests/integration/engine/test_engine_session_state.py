"""Each migration starts from the session state the run began with, whatever the one before
it did: role, session authorization, search_path and every other setting, on every path (one
at a time, batched, no-transaction); and the history row is always written as the runner."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from psycopg import sql

from integration.engine.engine_helpers import history, query, src
from kubemigrate.engine.migrate.migrator import Migrator


def _owners(url: str) -> dict[str, str]:
    return dict(
        query(
            url,
            """
        SELECT format('%I.%I', schemaname, tablename), tableowner::text FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'kubemigrate')""",
        )
    )


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def roles(database_url: str) -> Iterator[tuple[str, str]]:
    """(runner, owner): a login role that is no superuser and may create in the database,
    and a role it is a member of, which may create in schema public."""
    tag = uuid.uuid4().hex[:8]
    runner, owner = f"km_runner_{tag}", f"km_owner_{tag}"
    database = urlsplit(database_url).path.lstrip("/")
    ident = sql.Identifier
    for statement in (
        sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(owner)),
        sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(ident(runner), ident(owner)),
        sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(ident(database), ident(runner)),
        sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(ident(owner)),
    ):
        query(database_url, statement.as_string())
    try:
        yield runner, owner
    finally:
        for role in (runner, owner):
            query(database_url, sql.SQL("DROP OWNED BY {}").format(ident(role)).as_string())
            query(database_url, sql.SQL("DROP ROLE {}").format(ident(role)).as_string())


def test_set_role_and_session_authorization_do_not_leak(
    engine: Migrator, database_url: str, roles: tuple[str, str]
) -> None:
    _, owner = roles
    sources = [
        src("1", f"SET ROLE {owner};\nCREATE TABLE owned (id int);"),
        src("2", "CREATE TABLE after_role (id int);\nINSERT INTO after_role VALUES (1);"),
        src("3", f"SET SESSION AUTHORIZATION {owner};\nCREATE TABLE owned_too (id int);"),
        src("4", "CREATE TABLE after_authorization (id int);"),
        src("5", "CREATE TABLE batched_a (id int);"),
        src("6", "CREATE TABLE batched_b (id int);"),
        src(
            "7",
            f"SET ROLE {owner};\nCREATE INDEX CONCURRENTLY owned_id ON owned (id);",
            transactional=False,
        ),
        src("8", "CREATE TABLE after_no_transaction (id int);"),
    ]
    report = engine.apply(sources)
    assert report.ok, report.failed
    assert _owners(database_url) == {
        "public.owned": owner,
        "public.after_role": "postgres",
        "public.owned_too": owner,
        "public.after_authorization": "postgres",
        "public.batched_a": "postgres",
        "public.batched_b": "postgres",
        "public.after_no_transaction": "postgres",
    }
    assert {r["version"] for r in history(database_url) if r["status"] == "success"} == {
        str(i) for i in range(1, 9)
    }


def test_set_config_and_other_settings_do_not_leak_on_any_path(
    engine: Migrator, database_url: str
) -> None:
    report = engine.apply(
        [
            src("1", "CREATE SCHEMA other;\nSELECT set_config('search_path', 'other', false);"),
            src("2", "CREATE TABLE one_at_a_time (id int);\nINSERT INTO one_at_a_time VALUES (1);"),
            src("3", "DO $$ BEGIN PERFORM set_config('search_path', 'other', false); END $$;"),
            src("4", "CREATE TABLE batched_a (id int);"),
            src("5", "CREATE TABLE batched_b (id int);"),
            src("6", "SELECT set_config('default_transaction_read_only', 'on', false);"),
            src("7", "CREATE TABLE writable (id int);"),
            src("8", "SELECT set_config('search_path', 'other', false);", transactional=False),
            src(
                "9",
                "CREATE TABLE after_no_transaction (id int);\nINSERT INTO"
                " after_no_transaction VALUES (1);",
            ),
        ]
    )
    assert report.ok, report.failed
    assert set(_owners(database_url)) == {
        "public.one_at_a_time",
        "public.batched_a",
        "public.batched_b",
        "public.writable",
        "public.after_no_transaction",
    }


def test_a_migration_may_set_role_to_an_owner_the_runner_belongs_to(
    database_url: str, roles: tuple[str, str]
) -> None:
    """The history row is written as the runner, whatever role the migration switched to."""
    runner, owner = roles
    engine = Migrator(_as_user(database_url, runner), lock_retry_delay=0.02, actor="tests")
    sources = [
        src("1", f"SET ROLE {owner};\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);"),
        src("2", f"SET ROLE {owner};\nCREATE TABLE b (id int);"),
        src(
            "3",
            f"SET ROLE {owner};\nCREATE INDEX CONCURRENTLY a_id ON a (id);",
            transactional=False,
        ),
        src("4", "CREATE TABLE c (id int);"),
    ]
    report = engine.apply(sources)
    assert report.ok, report.failed
    assert _owners(database_url) == {"public.a": owner, "public.b": owner, "public.c": runner}
    assert [r["status"] for r in history(database_url)] == [
        "success",
        "success",
        "pending",
        "success",
        "success",
    ]
