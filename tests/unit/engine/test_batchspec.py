"""Batch markers and parameters, parsed without a database (engine/migrate/batchspec)."""

from __future__ import annotations

import pytest

from kubemigrate.engine.migrate.batchspec import BatchSpec, MarkerError, bind, markers
from kubemigrate.engine.migrate.sources import parse_directives


def test_the_marker_and_its_options() -> None:
    sql = (
        "-- kubemigrate: batch size=500 pause=100ms target=200ms min_size=10 max_size=9000"
        " max_lag=5s estimate=\"SELECT count(*) FROM t WHERE a = 'x'\"\n"
        "UPDATE t SET a = 1 WHERE id IN (SELECT id FROM t LIMIT :batch_size);\n"
    )
    assert markers(sql) == {
        1: BatchSpec(
            size=500,
            pause=0.1,
            target=0.2,
            min_size=10,
            max_size=9000,
            max_lag=5.0,
            estimate="SELECT count(*) FROM t WHERE a = 'x'",
            line=1,
        )
    }


@pytest.mark.parametrize("value", ["off", "OFF", "local", "on"])
def test_synchronous_commit_option(value: str) -> None:
    sql = (
        f"-- kubemigrate: batch size=5 synchronous_commit={value}\n"
        "UPDATE t SET a = 1 WHERE id IN (SELECT id FROM t LIMIT :batch_size);\n"
    )
    assert markers(sql)[1].synchronous_commit == value.lower()
    assert markers(sql.replace(f" synchronous_commit={value}", ""))[1].synchronous_commit is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("-- kubemigrate: batch", "size=<rows> is required"),
        ("-- kubemigrate: batch size=0", "size=0 is not a whole number"),
        ("-- kubemigrate: batch size=-3", "size=-3 is not a whole number"),
        ("-- kubemigrate: batch size=10 size=20", "size given twice"),
        ("-- kubemigrate: batch size=10 pause", "'pause' is not key=value"),
        ("-- kubemigrate: batch size=10 pause=soon", "pause=soon"),
        ("-- kubemigrate: batch size=10 target=0s", "target must be more than 0"),
        ("-- kubemigrate: batch size=10 colour=red", "unknown option 'colour'"),
        ('-- kubemigrate: batch size=10 estimate="SELECT 1', "No closing quotation"),
        ("-- kubemigrate: batch size=10 min_size=50 max_size=20", "max_size is below min_size"),
        ("-- kubemigrate: batchsize=10", "malformed batch marker"),
        ("-- kubemigrate: batch-size=10", "malformed batch marker"),
        ("-- kubemigrate: batch size=10 synchronous_commit=maybe", "not one of on, off, local"),
        ("-- kubemigrate: batch size=10 synchronous_commit=remote_apply", "not one of"),
    ],
)
def test_malformed_markers_name_their_line(line: str, reason: str) -> None:
    with pytest.raises(MarkerError) as refused:
        markers(f"SELECT 1;\n{line}\nUPDATE t SET a = 1;\n")
    assert refused.value.line == 2
    assert reason in str(refused.value)
    assert str(refused.value).startswith("line 2: ")


def test_parameters_become_server_side_parameters_only_where_they_are_tokens() -> None:
    sql = (
        "UPDATE t SET note = ':batch_size', a = $$ :last_key $$ -- :batch_size\n"
        "WHERE id > :last_key AND x::last_key IS NULL LIMIT :batch_size RETURNING id"
    )
    bound = bind(sql)
    assert bound.sql == (
        "UPDATE t SET note = ':batch_size', a = $$ :last_key $$ -- :batch_size\n"
        "WHERE id > $2 AND x::last_key IS NULL LIMIT $1 RETURNING id"
    )
    assert bound.lines == {2: frozenset({"last_key", "batch_size"})}


def test_a_marker_is_no_header_directive() -> None:
    """A file may start with its batched statement: the marker ends the header lines."""
    sql = "-- kubemigrate: lock-timeout=5s\n-- kubemigrate: batch size=10\nUPDATE t SET a = 1;"
    assert parse_directives(sql).lock_timeout == 5.0


def test_a_step_knows_its_batched_statements() -> None:
    from kubemigrate.engine.migrate.sources import MigrationSource  # noqa: PLC0415
    from kubemigrate.engine.migrate.step import Step  # noqa: PLC0415

    sql = (
        "ALTER TABLE t ADD COLUMN c int;\n"
        "-- kubemigrate: batch size=100\n"
        "UPDATE t SET c = 1 WHERE id IN (SELECT id FROM t WHERE id > :last_key\n"
        "  ORDER BY id LIMIT :batch_size) RETURNING id;\n"
        "ALTER TABLE t ALTER c SET NOT NULL;\n"
    )
    step = Step.of(MigrationSource("1", "x", sql), "apply", 170000)
    assert step.batch_error is None
    (batched,) = step.batches.values()
    assert (batched.index, batched.keyset, batched.returning, batched.spec.size) == (
        2,
        True,
        True,
        100,
    )
    assert step.stepwise
    assert "$2" in step.sql and ":last_key" not in step.sql
    assert step.checksum == MigrationSource("1", "x", sql).checksum  # of the text as written
    keyless = Step.of(MigrationSource("1", "x", sql.replace(" RETURNING id", "")), "apply", 0)
    assert keyless.batch_error == (
        "line 3: a batched statement using :last_key must end in RETURNING <key>"
    )


def test_the_units_a_batched_migration_runs_in() -> None:
    """The statements between batched ones run together, in one transaction each; a
    no-transaction migration runs every statement alone."""
    from kubemigrate.engine.migrate.nontransactional import span, units  # noqa: PLC0415
    from kubemigrate.engine.migrate.sources import MigrationSource  # noqa: PLC0415
    from kubemigrate.engine.migrate.step import Step  # noqa: PLC0415

    sql = (
        "CREATE TABLE a (id int);\nCREATE TABLE b (id int); -- two\n"
        "-- kubemigrate: batch size=10\n"
        "DELETE FROM a WHERE id IN (SELECT id FROM a LIMIT :batch_size);\n"
        "DROP TABLE b;\n"
    )
    step = Step.of(MigrationSource("1", "x", sql), "apply", 170000)
    assert step.statements is not None
    grouped = units(step, step.statements)
    assert [[s.index for s in unit] for unit in grouped] == [[1, 2], [3], [4]]
    assert span(step.sql, grouped[0]) == "CREATE TABLE a (id int);\nCREATE TABLE b (id int)"
    alone = Step.of(MigrationSource("1", "x", sql, transactional=False), "apply", 170000)
    assert alone.statements is not None
    assert [[s.index for s in u] for u in units(alone, alone.statements)] == [[1], [2], [3], [4]]
