"""Batched steps (``-- kubemigrate: batch size=<n>``): batches, checkpoints, resume, dry run,
rollback, throttling and progress, against a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from integration.engine.engine_helpers import history, query, src
from kubemigrate.engine import BatchProgress, InvalidSources, Migrator
from kubemigrate.engine.migrate.sources import SourceError, load_directory

pytestmark = pytest.mark.integration

ROWS = 20_000

TABLE = f"""
CREATE TABLE items (id bigint PRIMARY KEY, total numeric NOT NULL, hits integer NOT NULL DEFAULT 0);
INSERT INTO items (id, total) SELECT g, g / 100.0 FROM generate_series(1, {ROWS}) g;
"""

KEYSET = """ALTER TABLE items ADD COLUMN cents bigint;
-- kubemigrate: batch size=1000
UPDATE items SET cents = round(total * 100), hits = hits + 1
WHERE id IN (SELECT id FROM items WHERE id > coalesce(:last_key, 0) ORDER BY id LIMIT :batch_size)
RETURNING id;
ALTER TABLE items ALTER COLUMN cents SET NOT NULL;
"""

PREDICATE = """ALTER TABLE items ADD COLUMN cents bigint;
-- kubemigrate: batch size=3000
UPDATE items SET cents = round(total * 100), hits = hits + 1
WHERE id IN (SELECT id FROM items WHERE cents IS NULL ORDER BY id LIMIT :batch_size);
"""


def _ready(engine: Migrator) -> None:
    engine.apply([src("1", TABLE)]).raise_for_failure()


def test_keyset_backfill_every_row_once_with_ddl_around(
    engine: Migrator, database_url: str
) -> None:
    _ready(engine)
    report = engine.apply([src("1", TABLE), src("2", KEYSET)])
    report.raise_for_failure()
    (result,) = report.results
    assert result.rows_affected == ROWS
    assert result.batches == ROWS // 1000
    assert query(database_url, "SELECT min(hits), max(hits), count(*) FROM items") == [(1, 1, ROWS)]
    not_null = "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass"
    assert query(database_url, not_null + " AND attname = 'cents'") == [(True,)]
    assert query(database_url, "SELECT count(*) FROM kubemigrate.progress") == [(0,)]
    rows = [r for r in history(database_url) if r["version"] == "2"]
    assert [(r["status"], r["rows_affected"]) for r in rows] == [
        ("pending", None),
        ("success", ROWS),
    ]


def test_predicate_form_stops_when_a_batch_changes_nothing(
    engine: Migrator, database_url: str
) -> None:
    _ready(engine)
    seen: list[BatchProgress] = []
    report = Migrator(database_url, actor="tests", on_batch=seen.append).apply(
        [src("1", TABLE), src("2", PREDICATE)]
    )
    report.raise_for_failure()
    assert report.results[0].batches == 7  # 20,000 rows in batches of 3,000
    assert query(database_url, "SELECT min(hits), max(hits) FROM items") == [(1, 1)]
    assert [p.state for p in seen][-1] == "done"
    running = [p for p in seen if p.state == "running"]
    assert [p.rows for p in running] == [3000 * n for n in range(1, 7)] + [ROWS]
    # The planner knows nothing of a column just added (its estimate of "cents IS NULL"
    # is a default guess); the estimate never falls below the rows done.
    assert running[0].estimate_source == "planner"
    assert all(p.estimate is not None and p.estimate >= p.rows for p in running)
    assert running[-1].rate is not None and running[-1].rate > 0


def test_estimate_query_and_adaptive_size(engine: Migrator, database_url: str) -> None:
    _ready(engine)
    sql = PREDICATE.replace(
        "batch size=3000",
        'batch size=100 target=50ms max_size=5000 estimate="SELECT count(*) FROM items'
        ' WHERE cents IS NULL"',
    )
    seen: list[BatchProgress] = []
    Migrator(database_url, actor="tests", on_batch=seen.append).apply(
        [src("1", TABLE), src("2", sql)]
    ).raise_for_failure()
    first = next(p for p in seen if p.state == "running")
    assert (first.estimate, first.estimate_source) == (ROWS, "query")
    sizes = [p.batch_size for p in seen]
    assert max(sizes) > 100  # small batches are much faster than 50 ms: the size grows
    assert max(sizes) <= 5000
    assert query(database_url, "SELECT min(hits), max(hits) FROM items") == [(1, 1)]


POISON = """
CREATE FUNCTION items_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 12345 AND NOT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'cured') THEN
    RAISE EXCEPTION 'poisoned row';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER items_poison BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION items_poison();
"""


def test_a_failed_run_resumes_from_its_checkpoint(engine: Migrator, database_url: str) -> None:
    engine.apply([src("1", TABLE + POISON)]).raise_for_failure()
    sources = [src("1", TABLE + POISON), src("2", KEYSET)]
    failed = engine.apply(sources)
    (result,) = failed.results
    assert result.status == "failed"
    assert result.error is not None and "poisoned row" in result.error
    assert (result.statement_index, result.line) == (2, 3)
    assert result.batches == 12  # batches 1..12 committed, the 13th failed
    assert query(database_url, "SELECT count(*) FROM items WHERE hits = 1") == [(12_000,)]
    assert query(
        database_url,
        "SELECT batch_statement, batches, batch_rows, last_key FROM kubemigrate.progress",
    ) == [(2, 12, 12_000, "12000")]
    (state,) = [s for s in engine.status(sources) if s.version == "2"]
    assert state.state == "failed"
    assert state.resume is not None and "after its batch 12 (12000 rows done" in state.resume
    query(database_url, "CREATE TABLE cured ()")
    again = engine.apply(sources)
    again.raise_for_failure()
    assert again.results[0].batches == 8  # only the batches after the checkpoint
    assert query(database_url, "SELECT min(hits), max(hits), count(*) FROM items") == [(1, 1, ROWS)]
    assert query(database_url, "SELECT count(*) FROM items WHERE cents IS NULL") == [(0,)]


RANGE = """ALTER TABLE items ADD COLUMN cents bigint;
-- kubemigrate: batch size=1000
UPDATE items SET cents = round(total * 100), hits = hits + 1
WHERE id > coalesce(:last_key, 0)
  AND id <= (SELECT max(id) FROM (SELECT id FROM items WHERE id > coalesce(:last_key, 0)
                                  ORDER BY id LIMIT :batch_size) s)
RETURNING id;
"""
"""The key-range form engine.md recommends: the range up to the largest of the next
:batch_size keys."""


def _gapped_key(g: int) -> int:
    """The g-th key of GAPPED: irregular gaps of 4 to 16, and one of ten million."""
    return g * 10 + (g * g) % 7 + (10_000_000 if g > 15_000 else 0)


GAPPED = f"""
CREATE TABLE items (id bigint PRIMARY KEY, total numeric NOT NULL, hits integer NOT NULL DEFAULT 0);
INSERT INTO items (id, total)
SELECT g * 10 + (g * g) % 7 + CASE WHEN g > 15000 THEN 10000000 ELSE 0 END, g / 100.0
FROM generate_series(1, {ROWS}) g;
"""


def test_range_form_with_gaps_runs_every_row_once_and_resumes(
    engine: Migrator, database_url: str
) -> None:
    poison = POISON.replace("NEW.id = 12345", f"NEW.id = {_gapped_key(12_345)}")
    engine.apply([src("1", GAPPED + poison)]).raise_for_failure()
    sources = [src("1", GAPPED + poison), src("2", RANGE)]
    (failed,) = engine.apply(sources).results
    assert failed.status == "failed"
    assert failed.error is not None and "poisoned row" in failed.error
    assert failed.batches == 12  # exactly 1,000 keys a batch, whatever the gaps
    assert query(database_url, "SELECT count(*), max(id) FROM items WHERE hits = 1") == [
        (12_000, _gapped_key(12_000))
    ]
    assert query(database_url, "SELECT last_key FROM kubemigrate.progress") == [
        (str(_gapped_key(12_000)),)
    ]
    query(database_url, "CREATE TABLE cured ()")
    again = engine.apply(sources)
    again.raise_for_failure()
    assert again.results[0].batches == 8  # resumed after the checkpoint; stopped when empty
    assert query(database_url, "SELECT min(hits), max(hits), count(*) FROM items") == [(1, 1, ROWS)]
    assert query(database_url, "SELECT count(*) FROM items WHERE cents IS NULL") == [(0,)]


def test_malformed_markers_are_refused_before_anything_runs(
    engine: Migrator, database_url: str, tmp_path: Any
) -> None:
    _ready(engine)
    bad = {
        "size=0": KEYSET.replace("size=1000", "size=0"),
        "unknown option": KEYSET.replace("size=1000", "size=10 speed=fast"),
        "no size": KEYSET.replace("size=1000", "pause=1s"),
        "not before a statement": KEYSET.replace("-- kubemigrate: batch size=1000\n", "")
        + "-- kubemigrate: batch size=5\n",
        "keyset without RETURNING": KEYSET.replace("RETURNING id", ""),
        "no :batch_size": KEYSET.replace(":batch_size", "10"),
        "parameter without marker": KEYSET.replace("-- kubemigrate: batch size=1000\n", "\n"),
        "misspelt marker": KEYSET.replace("batch size=1000", "batchsize=1000"),
        "not DML": "-- kubemigrate: batch size=10\nSELECT :batch_size;\n",
    }
    for name, sql in bad.items():
        with pytest.raises(InvalidSources) as refused:
            engine.apply([src("1", TABLE), src("2", sql)])
        assert "line " in str(refused.value), name
        assert query(database_url, "SELECT count(*) FROM kubemigrate.history WHERE version = '2'")[
            0
        ] == (0,), name
        assert query(database_url, "SELECT count(*) FROM pg_attribute WHERE attname = 'cents'") == [
            (0,)
        ], name
    # The CLI's loader names the file and the line.
    (tmp_path / "2_backfill.up.sql").write_text(bad["size=0"])
    with pytest.raises(SourceError, match=r"2_backfill\.up\.sql: line 2: batch marker: size=0"):
        load_directory(tmp_path)


def test_dry_run_runs_the_first_batch_and_rolls_it_back(
    engine: Migrator, database_url: str
) -> None:
    _ready(engine)
    query(database_url, "ANALYZE items")  # the planner's estimate needs the table's statistics
    report = engine.apply([src("1", TABLE), src("2", KEYSET)], dry_run=True)
    (result,) = report.results
    assert (result.status, result.rows_affected, result.batches) == ("success", 1000, 1), result
    # The planner's estimate of the keyset statement without its LIMIT: every row.
    assert result.rows_estimate is not None and ROWS / 3 < result.rows_estimate < ROWS * 3
    # Also for the form whose rows changed the planner cannot count (= ANY of an array).
    any_form = KEYSET.replace("WHERE id IN (SELECT", "WHERE id = ANY (ARRAY(SELECT").replace(
        ":batch_size)", ":batch_size))"
    )
    report = engine.apply([src("1", TABLE), src("2", any_form)], dry_run=True)
    (result,) = report.results
    assert (result.status, result.rows_affected) == ("success", 1000), result
    assert result.rows_estimate is not None and ROWS / 3 < result.rows_estimate < ROWS * 3
    assert query(database_url, "SELECT max(hits) FROM items") == [(0,)]
    assert query(database_url, "SELECT count(*) FROM pg_attribute WHERE attname = 'cents'") == [
        (0,)
    ]


def test_rollback_runs_a_batched_down_file(engine: Migrator, database_url: str) -> None:
    _ready(engine)
    down = """-- kubemigrate: batch size=4000
UPDATE items SET hits = hits + 10
WHERE id IN (SELECT id FROM items WHERE cents IS NOT NULL ORDER BY id LIMIT :batch_size)
RETURNING id;
-- kubemigrate: batch size=5000
UPDATE items SET cents = NULL
WHERE id IN (SELECT id FROM items WHERE cents IS NOT NULL LIMIT :batch_size);
ALTER TABLE items DROP COLUMN cents;
"""
    down = down.replace("hits = hits + 10\n", "hits = hits + 10, cents = NULL\n", 1)
    sources = [src("1", TABLE), src("2", PREDICATE, down)]
    engine.apply(sources).raise_for_failure()
    report = engine.rollback(sources, target="1")
    report.raise_for_failure()
    assert report.results[0].batches == 5  # the first statement does all; the second none
    assert query(database_url, "SELECT min(hits), max(hits) FROM items") == [(11, 11)]
    assert query(database_url, "SELECT count(*) FROM pg_attribute WHERE attname = 'cents'") == [
        (0,)
    ]


def test_a_batch_that_hits_lock_timeout_is_retried(make_engine: Any, database_url: str) -> None:
    engine = make_engine(default_lock_timeout=0.1, lock_retry_attempts=20)
    _ready(engine)
    holder = psycopg.connect(database_url)
    holder.execute("SELECT 1 FROM items WHERE id = 5000 FOR UPDATE")
    release = threading.Timer(0.6, holder.commit)
    release.start()
    try:
        report = engine.apply([src("1", TABLE), src("2", KEYSET)])
    finally:
        release.join()
        holder.close()
    report.raise_for_failure()
    assert report.results[0].attempts > 1
    assert query(database_url, "SELECT min(hits), max(hits) FROM items") == [(1, 1)]


def test_paused_waits_between_batches(engine: Migrator, database_url: str) -> None:
    _ready(engine)
    seen: list[BatchProgress] = []
    until = time.monotonic() + 1.5

    def paused() -> bool:
        # Paused after the third batch, for a while.
        batches = seen[-1].batches if seen else 0
        return batches == 3 and time.monotonic() < until

    Migrator(database_url, actor="tests", on_batch=seen.append, paused=paused).apply(
        [src("1", TABLE), src("2", KEYSET)]
    ).raise_for_failure()
    states = [(p.state, p.batches) for p in seen]
    assert ("paused", 3) in states
    assert states[-1] == ("done", 20)
    assert query(database_url, "SELECT min(hits), max(hits) FROM items") == [(1, 1)]


def test_max_lag_without_standbys_does_not_wait(engine: Migrator, database_url: str) -> None:
    _ready(engine)
    sql = KEYSET.replace("batch size=1000", "batch size=5000 max_lag=1s pause=10ms")
    started = time.monotonic()
    engine.apply([src("1", TABLE), src("2", sql)]).raise_for_failure()
    assert time.monotonic() - started < 10
    assert query(database_url, "SELECT min(hits), max(hits) FROM items") == [(1, 1)]


def test_a_layout_2_history_is_upgraded_and_keeps_working(
    engine: Migrator, database_url: str
) -> None:
    """A history written by the kubemigrate before batched steps (layout 2) gains the
    checkpoint columns under the lock, in one transaction."""
    from kubemigrate.engine.migrate import history_layout  # noqa: PLC0415

    _ready(engine)
    layout_2 = (
        "DROP VIEW kubemigrate.version_state;"
        "ALTER TABLE kubemigrate.progress DROP COLUMN batch_statement, DROP COLUMN batches,"
        " DROP COLUMN batch_rows, DROP COLUMN last_key, DROP COLUMN batch_size;"
        + history_layout._VIEW_2.replace("{schema}", "kubemigrate")
        + "UPDATE kubemigrate.schema_info SET layout_version = 2;"
    )
    query(database_url, layout_2)
    engine.apply([src("1", TABLE), src("2", KEYSET)]).raise_for_failure()
    assert query(database_url, "SELECT layout_version FROM kubemigrate.schema_info") == [(3,)]
    assert query(database_url, "SELECT min(hits), max(hits) FROM items") == [(1, 1)]


SETTING = """ALTER TABLE items ADD COLUMN seen text;
-- kubemigrate: batch size=5000 synchronous_commit={value}
UPDATE items SET seen = current_setting('synchronous_commit'), hits = hits + 1
WHERE id > coalesce(:last_key, 0)
  AND id <= (SELECT max(id) FROM (SELECT id FROM items WHERE id > coalesce(:last_key, 0)
                                  ORDER BY id LIMIT :batch_size) s)
RETURNING id;
CREATE TABLE after_batches AS SELECT current_setting('synchronous_commit') AS seen;
"""


@pytest.mark.parametrize("value", ["off", "local"])
def test_synchronous_commit_is_set_in_each_batch_and_nowhere_else(
    engine: Migrator, database_url: str, value: str
) -> None:
    # The test server's own default is off (fsync off): this database's is on, so that both
    # values differ from it.
    query(
        database_url,
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit"
        " = on', current_database()); END $$",
    )
    _ready(engine)
    report = Migrator(database_url, actor="tests").apply(
        [src("1", TABLE), src("2", SETTING.format(value=value))]
    )
    report.raise_for_failure()
    assert report.results[0].batches == ROWS // 5000
    assert query(
        database_url, "SELECT seen, min(hits), max(hits), count(*) FROM items GROUP BY 1"
    ) == [(value, 1, 1, ROWS)]
    assert query(database_url, "SELECT seen FROM after_batches") == [("on",)]


DEFERRED = """
CREATE FUNCTION items_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 12345 AND NOT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'cured') THEN
    RAISE EXCEPTION 'poisoned at commit';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER items_check AFTER UPDATE ON items DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION items_check();
"""


def test_a_batch_failing_at_its_commit_keeps_the_checkpoint_before_it(
    engine: Migrator, database_url: str
) -> None:
    # The checkpoint and COMMIT travel in one message: a deferred constraint failing at COMMIT
    # is the batch's failure (its statement and line), and rolls back its checkpoint with it.
    engine.apply([src("1", TABLE + DEFERRED)]).raise_for_failure()
    sources = [src("1", TABLE + DEFERRED), src("2", RANGE)]
    (failed,) = engine.apply(sources).results
    assert failed.status == "failed"
    assert failed.error is not None and "poisoned at commit" in failed.error
    assert "checkpoint" not in failed.error
    assert (failed.statement_index, failed.line) == (2, 3)
    assert failed.batches == 12
    assert query(
        database_url, "SELECT batches, batch_rows, last_key FROM kubemigrate.progress"
    ) == [(12, 12_000, "12000")]
    assert query(database_url, "SELECT count(*) FROM items WHERE hits = 1") == [(12_000,)]
    query(database_url, "CREATE TABLE cured ()")
    again = engine.apply(sources)
    again.raise_for_failure()
    assert again.results[0].batches == 8
    assert query(database_url, "SELECT min(hits), max(hits), count(*) FROM items") == [(1, 1, ROWS)]
