"""Batched steps through the real command: ``kill -9`` at random points, then a plain re-run
that processes every row exactly once (a column the statement increments counts it), with
fewer batches after a resume than the whole; malformed markers refused before anything runs;
JSON lines with ``--json``.

The keys have irregular gaps. Short by default (200,000 rows, 3 kills of each form, for
``make test``);
``KUBEMIGRATE_BATCH_ROWS=2000000 KUBEMIGRATE_BATCH_KILLS=10`` is the long run
(``make faults-batch``). ``KUBEMIGRATE_BATCH_SEED`` repeats a run's kill points.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from harness import postgres
from integration.cli.cli_helpers import Kubemigrate, Migrations, query

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

ROWS = int(os.environ.get("KUBEMIGRATE_BATCH_ROWS", "200000"))
KILLS = int(os.environ.get("KUBEMIGRATE_BATCH_KILLS", "3"))
SEED = int(os.environ.get("KUBEMIGRATE_BATCH_SEED", str(time.time_ns() % 1_000_000)))
SIZE = max(1000, ROWS // 100)
PAUSE = "20ms"
"""Between batches: 100 batches last 2 s or more however fast the server, so a kill up to 0.5 s
after a batch lands mid-step rather than after the run ended."""

FORMS = {
    "keyset": f"""-- kubemigrate: batch size={SIZE} pause={PAUSE}
UPDATE big SET n = n + 1
WHERE id IN (SELECT id FROM big WHERE id > coalesce(:last_key, 0) ORDER BY id LIMIT :batch_size)
RETURNING id;
""",
    "range": f"""-- kubemigrate: batch size={SIZE} pause={PAUSE}
UPDATE big SET n = n + 1
WHERE id > coalesce(:last_key, 0)
  AND id <= (SELECT max(id) FROM (SELECT id FROM big WHERE id > coalesce(:last_key, 0)
                                  ORDER BY id LIMIT :batch_size) s)
RETURNING id;
""",
    "range-async": f"""-- kubemigrate: batch size={SIZE} pause={PAUSE} synchronous_commit=off
UPDATE big SET n = n + 1
WHERE id > coalesce(:last_key, 0)
  AND id <= (SELECT max(id) FROM (SELECT id FROM big WHERE id > coalesce(:last_key, 0)
                                  ORDER BY id LIMIT :batch_size) s)
RETURNING id;
""",
    "predicate": f"""ALTER TABLE big ADD COLUMN done boolean;
-- kubemigrate: batch size={SIZE} pause={PAUSE}
UPDATE big SET n = n + 1, done = true
WHERE id IN (SELECT id FROM big WHERE done IS NULL ORDER BY id LIMIT :batch_size);
ALTER TABLE big ALTER COLUMN done SET NOT NULL;
""",
}


def _fill(url: str) -> None:
    query(
        url,
        "CREATE TABLE big (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0);"
        # Keys with irregular gaps (4 to 16 apart) and one large one, for the keyset forms.
        "INSERT INTO big (id) SELECT g * 10 + mod(g::bigint * g, 7)"
        f" + CASE WHEN g > {ROWS // 2} THEN 10000000 ELSE 0 END FROM generate_series(1, {ROWS}) g",
    )


def _checkpoint(url: str) -> int:
    rows = query(url, "SELECT coalesce(max(batches), 0) FROM kubemigrate.progress")
    return int(rows[0][0]) if rows else 0


def _progress_exists(url: str) -> bool:
    return bool(query(url, "SELECT to_regclass('kubemigrate.progress') IS NOT NULL")[0][0])


@pytest.mark.parametrize("form", sorted(FORMS))
def test_kill_9_at_random_points_then_rerun_processes_every_row_once(
    kubemigrate: Kubemigrate, migrations: Migrations, database_url: str, form: str
) -> None:
    rng = random.Random(f"{SEED}-{form}")
    _fill(database_url)
    migrations.write("1_backfill.up.sql", FORMS[form])
    total = -(-ROWS // SIZE)
    landed = 0
    finished = False
    for kill in range(KILLS):
        before = _checkpoint(database_url) if _progress_exists(database_url) else 0
        process = kubemigrate.start("apply")
        deadline = time.monotonic() + 120
        # Wait for at least one batch of this run, then a random moment more.
        while process.poll() is None and time.monotonic() < deadline:
            if _progress_exists(database_url) and _checkpoint(database_url) > before:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.5))
        if process.poll() is not None:
            process.communicate()
            finished = True  # it ended before the kill: the re-run below has nothing to do
            break
        process.send_signal(signal.SIGKILL)
        process.communicate()
        landed += 1
        # Every committed batch is in the checkpoint, and nothing more (the one running when
        # the kill landed is rolled back with its checkpoint, once the server notices).
        time.sleep(1.5)
        ((counted, done),) = query(  # one snapshot: a late COMMIT lands in both or neither
            database_url,
            "SELECT (SELECT count(*) FROM big WHERE n = 1),"
            " (SELECT coalesce(max(batches), 0) FROM kubemigrate.progress)",
        )
        assert query(database_url, "SELECT max(n) FROM big")[0][0] <= 1, f"kill {kill}"
        assert counted == min(ROWS, done * SIZE), f"kill {kill}: seed {SEED}"
    assert landed >= 1, f"no kill landed mid-step (seed {SEED})"
    resumed_at = _checkpoint(database_url)
    final = kubemigrate("apply", "--json", timeout=1800)
    assert final.returncode == 0, str(final)
    assert query(database_url, "SELECT min(n), max(n), count(*) FROM big") == [(1, 1, ROWS)]
    if finished:
        assert json.loads(final.stdout)["results"] == []
        return
    (result,) = json.loads(final.stdout)["results"]
    assert result["status"] == "success"
    assert 0 < result["batches"] < total  # only what the checkpoint did not hold
    assert result["batches"] == total - resumed_at
    events = [json.loads(line) for line in final.stderr.splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "batch" and events[-1]["state"] == "done"
    assert events[-1]["rows"] == ROWS
    assert events[0]["resumed_batches"] == resumed_at
    assert query(database_url, "SELECT count(*) FROM kubemigrate.progress") == [(0,)]
    print(
        f"\n{form}: {ROWS} rows in {total} batches; {landed} kills landed mid-step; the re-run"
        f" resumed after batch {resumed_at} and ran {result['batches']} (seed {SEED})"
    )


def test_malformed_marker_refused_before_anything_runs(
    kubemigrate: Kubemigrate, migrations: Migrations, database_url: str
) -> None:
    query(database_url, "CREATE TABLE big (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0)")
    migrations.write("1_first.up.sql", "CREATE TABLE other (id int);")
    migrations.write(
        "2_backfill.up.sql",
        "ALTER TABLE big ADD COLUMN done boolean;\n"
        "-- kubemigrate: batch size=10k\n"
        "UPDATE big SET n = n + 1 WHERE id IN (SELECT id FROM big LIMIT :batch_size);\n",
    )
    ran = kubemigrate("apply")
    assert ran.returncode != 0, str(ran)
    assert "2_backfill.up.sql: line 2: batch marker: size=10k" in ran.stderr, str(ran)
    assert query(database_url, "SELECT to_regclass('other') IS NULL")[0][0]
    assert query(database_url, "SELECT to_regclass('kubemigrate.history') IS NULL")[0][0]


def _reported(stderr: str) -> int:
    """The largest batch count a run's ``--json`` lines reported committed."""
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return max((e["batches"] for e in events if e.get("event") == "batch"), default=0)


@pytest.mark.parametrize("commit", ["on", "off"])
def test_server_kill_at_random_points_loses_batches_only_with_their_checkpoints(
    tmp_path: Path, migrations: Migrations, commit: str
) -> None:
    """The server itself crashes (immediate shutdown) mid-step, on a server of the test's own
    with fsync on and the WAL writer slowed to 10 s, so that with ``synchronous_commit=off``
    the last batches the run saw committed are usually not on disk: after recovery, the rows
    and the checkpoint agree (a batch is lost only together with its checkpoint), and the
    re-run processes every row exactly once. With ``on``, no batch the run saw committed is
    lost."""
    rng = random.Random(f"{SEED}-server-{commit}")
    datadir = tmp_path / "pgdata"
    server = postgres.start(datadir, fsync=True)
    try:
        url = server.url
        query(url, "ALTER SYSTEM SET wal_writer_delay = '10s'")
        query(url, "SELECT pg_reload_conf()")
        _fill(url)
        sql = FORMS["range"].replace(" pause=", f" synchronous_commit={commit} pause=")
        migrations.write("1_backfill.up.sql", sql)
        kubemigrate = Kubemigrate(url, migrations)
        total = -(-ROWS // SIZE)
        lost = landed = 0
        finished = False
        for kill in range(KILLS):
            before = _checkpoint(url) if _progress_exists(url) else 0
            process = kubemigrate.start("apply", "--json")
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline:
                if _progress_exists(url) and _checkpoint(url) > before:
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.5))
            if process.poll() is not None:
                process.communicate()
                finished = True  # it ended before the crash: the re-run has nothing to do
                break
            postgres.crash(datadir)
            _, stderr = process.communicate(timeout=120)
            landed += 1
            postgres.start(datadir, port=server.port, fsync=True)
            ((counted, durable, most),) = query(
                url,
                "SELECT (SELECT count(*) FROM big WHERE n = 1),"
                " (SELECT coalesce(max(batches), 0) FROM kubemigrate.progress),"
                " (SELECT max(n) FROM big)",
            )
            assert most <= 1, f"crash {kill}: seed {SEED}"
            assert counted == min(ROWS, durable * SIZE), f"crash {kill}: seed {SEED}"
            reported = _reported(stderr)
            if commit == "on":
                assert durable >= reported, f"crash {kill}: a committed batch was lost"
            lost += max(0, reported - durable)
        assert landed >= 1, f"no crash landed mid-step (seed {SEED})"
        resumed_at = _checkpoint(url)
        final = kubemigrate("apply", "--json", timeout=1800)
        assert final.returncode == 0, str(final)
        assert query(url, "SELECT min(n), max(n), count(*) FROM big") == [(1, 1, ROWS)]
        results = json.loads(final.stdout)["results"]
        assert [r["batches"] for r in results] == ([] if finished else [total - resumed_at])
        print(
            f"\nsynchronous_commit={commit}: {landed} server crashes mid-step; batches the run"
            f" had seen committed and the crash lost (with their checkpoints): {lost}"
            f" (seed {SEED})"
        )
    finally:
        postgres.stop(datadir)
