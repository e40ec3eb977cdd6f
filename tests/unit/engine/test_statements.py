"""Splitting SQL with PostgreSQL's grammar: positions, commands, transaction rules, relations."""

from __future__ import annotations

import pytest

from kubemigrate.engine.migrate.statements import (
    ParseError,
    Statement,
    forbidden_in_transaction,
    split_statements,
)


def only(sql: str, server_version_num: int | None = None) -> Statement:
    (statement,) = split_statements(sql, server_version_num)
    return statement


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "   \n\t",
        "-- just a comment\n",
        "/* block */",
        ";;",
        "/* nested /* comment */ still */\n-- and more",
    ],
)
def test_nothing_to_run(sql: str) -> None:
    assert split_statements(sql) == []


def test_text_index_and_line_skip_leading_comments_and_blank_lines() -> None:
    sql = (
        "-- header comment\n\n/* block\n   comment */\nCREATE TABLE a (id int);\n"
        "\n-- between\nINSERT INTO a VALUES (1); SELECT 2;\n"
    )
    a, b, c = split_statements(sql)
    assert (a.text, a.index, a.line) == ("CREATE TABLE a (id int)", 1, 5)
    assert (b.text, b.index, b.line) == ("INSERT INTO a VALUES (1)", 2, 8)
    assert (c.text, c.index, c.line) == ("SELECT 2", 3, 8)


def test_lines_are_right_after_multibyte_characters() -> None:
    sql = "-- café ünïcødé 😀\nSELECT '€€€';\n-- 日本語\n\nCREATE TABLE \"tâble\" (id int);"
    first, second = split_statements(sql)
    assert (first.text, first.line) == ("SELECT '€€€'", 2)
    assert (second.text, second.line) == ('CREATE TABLE "tâble" (id int)', 5)
    assert second.relations == ("tâble",)


def test_semicolons_inside_bodies_and_literals_do_not_split() -> None:
    sql = """CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
    BEGIN; RETURN 1; END;
    $body$;
    SELECT 'a;b', "c;d" FROM t;
    DO $$ BEGIN PERFORM 1; END $$;"""
    statements = split_statements(sql)
    assert [s.command for s in statements] == ["CREATE FUNCTION", "SELECT", "DO"]
    assert [s.line for s in statements] == [1, 4, 5]


def test_crlf_line_numbers() -> None:
    assert [s.line for s in split_statements("SELECT 1;\r\n\r\nSELECT 2;\r\n")] == [1, 3]


def test_last_statement_without_semicolon() -> None:
    assert [s.text for s in split_statements("SELECT 1; SELECT 2")] == ["SELECT 1", "SELECT 2"]


@pytest.mark.parametrize(
    ("sql", "command"),
    [
        ("CREATE TABLE t (id int)", "CREATE TABLE"),
        ("CREATE INDEX i ON t (a)", "CREATE INDEX"),
        ("CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY"),
        ("DROP TABLE t", "DROP TABLE"),
        ("DROP MATERIALIZED VIEW mv", "DROP MATERIALIZED VIEW"),
        ("ALTER TABLE t ADD COLUMN b int", "ALTER TABLE"),
        ("ALTER INDEX i RENAME TO j", "ALTER INDEX"),
        ("ALTER TABLE t RENAME TO u", "ALTER TABLE"),
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("UPDATE t SET a = 1", "UPDATE"),
        ("DELETE FROM t", "DELETE"),
        ("SELECT 1", "SELECT"),
        ("SELECT 1 INTO t2", "SELECT INTO"),
        ("CREATE TABLE t2 AS SELECT 1", "CREATE TABLE AS"),
        ("CREATE MATERIALIZED VIEW mv AS SELECT 1", "CREATE MATERIALIZED VIEW"),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv", "REFRESH MATERIALIZED VIEW CONCURRENTLY"),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'", "CREATE PROCEDURE"),
        ("GRANT SELECT ON t TO r", "GRANT"),
        ("REVOKE SELECT ON t FROM r", "REVOKE"),
        ("VACUUM t", "VACUUM"),
        ("ANALYZE t", "ANALYZE"),
        ("REINDEX TABLE CONCURRENTLY t", "REINDEX CONCURRENTLY"),
        ("BEGIN", "BEGIN"),
        ("ROLLBACK TO SAVEPOINT s", "ROLLBACK TO SAVEPOINT"),
        ("DISCARD ALL", "DISCARD ALL"),
        ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r", "ALTER DEFAULT PRIVILEGES"),
        ("CREATE TYPE mood AS ENUM ('a')", "CREATE TYPE"),
        ("TRUNCATE t", "TRUNCATE TABLE"),
    ],
)
def test_command(sql: str, command: str) -> None:
    assert only(sql).command == command


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX CONCURRENTLY i ON t (a)",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)",
        "DROP INDEX CONCURRENTLY i",
        "REINDEX INDEX CONCURRENTLY i",
        "REINDEX (CONCURRENTLY) TABLE t",
        "REINDEX SCHEMA s",
        "REINDEX DATABASE d",
        "REINDEX SYSTEM d",
        "VACUUM",
        "VACUUM (ANALYZE) t",
        "VACUUM FULL t",
        "CLUSTER",
        "CREATE DATABASE d",
        "DROP DATABASE d",
        "DROP DATABASE IF EXISTS d WITH (FORCE)",
        "ALTER DATABASE d SET TABLESPACE ts",
        "CREATE TABLESPACE ts LOCATION '/tmp/ts'",
        "DROP TABLESPACE ts",
        "ALTER SYSTEM SET work_mem = '64MB'",
        "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
        "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p",
        "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
        "ALTER SUBSCRIPTION s SET PUBLICATION p",
        "DROP SUBSCRIPTION s",
        "DISCARD ALL",
        "COMMIT PREPARED 'x'",
        "ROLLBACK PREPARED 'x'",
    ],
)
def test_forbidden_in_a_transaction_block(sql: str) -> None:
    statement = only(sql)
    assert statement.transaction_forbidden
    assert statement.reason and "cannot run inside a transaction block" in statement.reason


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX i ON t (a)",
        "DROP INDEX i",
        "REINDEX TABLE t",
        "REINDEX INDEX i",
        "ANALYZE t",
        "CLUSTER t USING i",
        "CLUSTER t",
        "ALTER DATABASE d SET work_mem = '1MB'",
        "ALTER TABLESPACE ts RENAME TO ts2",
        "ALTER TABLE p DETACH PARTITION c",
        "ALTER TYPE mood ADD VALUE 'ok'",
        "ALTER TYPE mood RENAME VALUE 'a' TO 'b'",
        "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p WITH (create_slot = false)",
        "CREATE SUBSCRIPTION s CONNECTION 'host=a' PUBLICATION p WITH (connect = false)",
        "ALTER SUBSCRIPTION s SET PUBLICATION p WITH (refresh = false)",
        "ALTER SUBSCRIPTION s DISABLE",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
        "DISCARD TEMP",
        "SAVEPOINT s",
        "SET lock_timeout = '2s'",
    ],
)
def test_allowed_in_a_transaction_block(sql: str) -> None:
    statement = only(sql)
    assert not statement.transaction_forbidden
    assert statement.reason is None


@pytest.mark.parametrize(
    ("server", "forbidden"),
    [
        (None, False),
        (150004, False),
        (120000, False),
        (110022, True),
        (96000, True),
    ],
)
def test_alter_type_add_value_depends_on_the_server(server: int | None, forbidden: bool) -> None:
    assert only("ALTER TYPE mood ADD VALUE 'ok'", server).transaction_forbidden is forbidden


@pytest.mark.parametrize(
    ("sql", "control"),
    [
        ("BEGIN", True),
        ("START TRANSACTION", True),
        ("COMMIT", True),
        ("END", True),
        ("ROLLBACK", True),
        ("ABORT", True),
        ("PREPARE TRANSACTION 'x'", True),
        ("COMMIT PREPARED 'x'", True),
        ("COMMIT AND CHAIN", True),
        ("SAVEPOINT s", False),
        ("RELEASE SAVEPOINT s", False),
        ("ROLLBACK TO SAVEPOINT s", False),
        ("SELECT 1", False),
    ],
)
def test_transaction_control(sql: str, control: bool) -> None:
    assert only(sql).transaction_control is control


def test_forbidden_in_transaction_lists_only_those() -> None:
    sql = "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);\nVACUUM t;"
    assert [(s.index, s.line, s.command) for s in forbidden_in_transaction(sql)] == [
        (2, 2, "CREATE INDEX CONCURRENTLY"),
        (3, 3, "VACUUM"),
    ]


@pytest.mark.parametrize(
    ("sql", "relations"),
    [
        ("CREATE TABLE app.users (id int)", ("app.users",)),
        ("ALTER TABLE users ADD COLUMN e text", ("users",)),
        ("CREATE INDEX i ON app.users (e)", ("app.users",)),
        ("INSERT INTO a SELECT * FROM b JOIN c.d ON true", ("a", "b", "c.d")),
        ("UPDATE a SET x = (SELECT 1 FROM b)", ("a", "b")),
        ("WITH x AS (SELECT 1) SELECT * FROM x, y", ("y",)),
        ("DROP TABLE a.b, c", ("a.b", "c")),
        ("DROP INDEX CONCURRENTLY app.i", ("app.i",)),
        ("TRUNCATE a, b", ("a", "b")),
        ("LOCK TABLE a IN ACCESS EXCLUSIVE MODE", ("a",)),
        ("ALTER TABLE a ADD FOREIGN KEY (x) REFERENCES b (id)", ("a", "b")),
        ("SELECT 1 FROM a, a", ("a",)),
        ("SELECT 1", ()),
        ("DROP FUNCTION f()", ()),
    ],
)
def test_relations(sql: str, relations: tuple[str, ...]) -> None:
    assert only(sql).relations == relations


def test_index_name() -> None:
    statement = only("CREATE INDEX CONCURRENTLY users_email ON users (email)")
    assert statement.index_name == "users_email"
    assert only("CREATE INDEX ON users (email)").index_name is None
    assert only("CREATE TABLE t (a int)").index_name is None


@pytest.mark.parametrize(
    ("sql", "line", "column", "message"),
    [
        ("SELEC 1", 1, 1, 'syntax error at or near "SELEC"'),
        ("SELECT 1;\n\n-- c\nCREATE TABLE t (a int,, b int);", 4, 23, 'at or near ","'),
        ("SELECT 'ééé';\nSELEC 1", 2, 1, 'at or near "SELEC"'),
        ("-- 😀😀😀\n\nSELECT 1;\nINSERT INTO t VALUES ('é') ,;\n", 4, 29, 'at or near ";"'),
        ("SELECT 1;\nSELECT (", 2, 8, "end of input"),
        ("SELECT 1;\nSELECT 'unterminated", 2, 8, "unterminated quoted string"),
    ],
)
def test_parse_errors_carry_the_right_line(sql: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        split_statements(sql)
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert message in error.message
    assert str(error).startswith(f"line {line}")
    assert isinstance(error, ValueError)


@pytest.mark.timeout(60)
def test_splitting_a_big_file_takes_linear_time() -> None:
    """20,000 statements (2 MB): the lines are counted once, not from the start for each
    statement (that took 40 s here; the parse itself about 0.5 s)."""
    import time  # noqa: PLC0415

    count = 20_000
    comment = "-- a comment line\n"
    sql = "".join(
        f"INSERT INTO big VALUES ({i}, 'a row of about a hundred bytes, {i:08d}');\n"
        + (comment if i % 7 == 0 else "")
        for i in range(count)
    )
    started = time.perf_counter()
    statements = split_statements(sql)
    elapsed = time.perf_counter() - started
    assert len(statements) == count
    assert statements[-1].line == sql.count("\n", 0, sql.rfind("INSERT")) + 1
    assert statements[7].line == 9 and statements[8].line == 11
    assert elapsed < 5, f"{elapsed:.1f} s for {count} statements"
