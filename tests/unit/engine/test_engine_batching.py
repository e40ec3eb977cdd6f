"""Which migrations may travel in a batch, and the tables a batch records without asking the
catalog: decided from the parse alone."""

from __future__ import annotations

import pytest

from kubemigrate.engine.migrate.batched import batchable
from kubemigrate.engine.migrate.catalog import created_tables
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.step import Step


def step(sql: str, **kw: object) -> Step:
    return Step.of(MigrationSource("1", "", sql, **kw), "apply", 150000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE t (id int)",
        "CREATE TABLE t (id int); CREATE INDEX ON t (id); COMMENT ON TABLE t IS 'x'",
        "ALTER TABLE t ADD COLUMN c int",
        "CREATE VIEW v AS SELECT 1; GRANT SELECT ON v TO public",
        "",
    ],
)
def test_ddl_that_reports_no_rows_is_batched(sql: str) -> None:
    assert batchable(step(sql))


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (1)",  # rows affected are only known afterwards
        "CREATE TABLE t AS SELECT 1 AS id",
        "UPDATE t SET id = 2",
        "SET search_path = app",  # session settings must not leak into the next migration
        "DROP TABLE t",  # a full catalog diff
        "ALTER TABLE t RENAME TO u",
        "DO $$ BEGIN END $$",
        "CREATE TABEL t (id int)",  # does not parse: run alone, where the error is located
    ],
)
def test_other_migrations_run_alone(sql: str) -> None:
    assert not batchable(step(sql))


def test_verification_and_no_transaction_run_alone() -> None:
    assert not batchable(step("CREATE TABLE t (id int)", verify_sql="SELECT true"))
    assert not batchable(step("CREATE INDEX CONCURRENTLY i ON t (id)", transactional=False))


def created(sql: str) -> str | None:
    statements = step(sql).statements
    assert statements is not None
    return created_tables(statements, "kubemigrate")


def test_plain_create_table_names_what_it_creates() -> None:
    unqualified = created("CREATE TABLE t (id int)")
    assert unqualified is not None
    assert "ELSE ARRAY[format('%I.%I', current_schema(), 't')] END" in unqualified
    assert "current_schema() = ANY (ARRAY['kubemigrate', 'information_schema'])" in unqualified
    assert created('CREATE TABLE app."O\'Brien" (id int)') == (
        "ARRAY[format('%I.%I', 'app', 'O''Brien')]"
    )
    assert created("CREATE INDEX ON t (id)") == "'{}'::text[]"
    assert (
        created("CREATE TABLE t (id int); CREATE INDEX ON t (id); COMMENT ON TABLE t IS 'x'")
        == unqualified
    )


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE IF NOT EXISTS t (id int)",  # may create nothing
        "CREATE TEMP TABLE t (id int)",
        "CREATE TABLE t (id int REFERENCES u (id))",  # may alter u
        "CREATE TABLE t (LIKE u)",
        "CREATE TABLE t PARTITION OF u FOR VALUES IN (1)",
        "CREATE TABLE kubemigrate.t (id int)",  # the history's schema is not counted
        "CREATE TABLE t (id int); ALTER TABLE u ADD COLUMN c int",
        "CREATE TABLE b (id int); CREATE TABLE a (id int)",  # sorted as the database sorts
        "CREATE TABLE t (id int); GRANT SELECT ON u TO public",  # u's catalog row changes
        "CREATE TABLE t (id int); CREATE TRIGGER g AFTER INSERT ON u"
        " FOR EACH ROW EXECUTE FUNCTION f()",
    ],
)
def test_the_catalog_decides_the_rest(sql: str) -> None:
    assert created(sql) is None
