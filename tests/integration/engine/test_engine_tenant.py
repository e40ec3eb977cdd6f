"""A schema-per-tenant target's connection: its search_path, set at start-up, is where the
migrations' unqualified names land, and the engine's RESET ALL between migrations keeps it."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from kubemigrate import engine
from kubemigrate.engine import ConnectionFailed


@pytest.mark.parametrize("schema", ["tenant_a", "Tenant A", 'we"ird\\name'])
def test_in_schema_sets_a_search_path_that_reset_all_keeps(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    assert engine.schema_exists(database_url, schema)
    with psycopg.connect(engine.in_schema(database_url, schema), autocommit=True) as conn:
        conn.execute("RESET ALL")
        conn.execute("CREATE TABLE t (id int)")
        row = conn.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 't'"
        ).fetchone()
    assert row == (schema,)


def test_schema_exists_says_no(database_url: str) -> None:
    assert not engine.schema_exists(database_url, "tenant_missing")
    assert engine.schema_exists(database_url, "public")


def test_schema_exists_on_a_database_that_is_not_there(database_url: str) -> None:
    gone = database_url.rsplit("/", 1)[0] + "/no_such_database_x"
    with pytest.raises(ConnectionFailed):
        engine.schema_exists(gone, "public")
