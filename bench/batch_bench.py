"""Batched-step benchmark: a backfill of every row of a large table, as one ``UPDATE`` and as a
batched step (``-- kubemigrate: batch size=<n>``, keyset form), in the same run, on a server of
its own with fsync on, each through ``kubemigrate apply`` on a fresh copy of the table.

While each runs, an application workload (``--writers`` sessions doing point UPDATEs of random
rows, autocommit) measures its write latency. After each: the table's size and dead tuples
(``pgstattuple`` when the server has it). Targets: the batched run within 1.3x of the single
statement's time, and the workload's p99 write latency under 50 ms while batched (the single
statement holds every row it changed until it commits).

Each ``--marker`` is one batched run (the marker's options), on its own fresh table, after the
single statement, in the same run; by default the earlier configuration (``size=<batch>``),
the adaptive size engine.md recommends (``target=200ms``) and the same with asynchronous
commits (``synchronous_commit=off``), so that all are measured against the same single
``UPDATE``.

    .venv/bin/python bench/batch_bench.py [--rows 10000000] [--batch 10000] [--writers 2]
        [--marker "size=10000 target=200ms" ...]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from engine_bench import KUBEMIGRATE, compile_kubemigrate, machine, timed  # noqa: E402

from harness import databases, postgres  # noqa: E402

TIME_TARGET = 1.3
P99_TARGET_MS = 50.0

SINGLE = "UPDATE orders SET total_cents = round(total * 100);\n"
BATCHED = """-- kubemigrate: batch {options}
UPDATE orders SET total_cents = round(total * 100)
WHERE id > coalesce(:last_key, 0)
  AND id <= (SELECT max(id) FROM (SELECT id FROM orders WHERE id > coalesce(:last_key, 0)
                                  ORDER BY id LIMIT :batch_size) s)
RETURNING id;
"""
"""The keyset form as engine.md recommends it: a key range whose upper bound is the largest of
the next ``:batch_size`` keys, so that the batch is one index range scan reading the table in
key order. The earlier ``= ANY (ARRAY(...))`` form probes the index once per row (about 20%
more time per row, measured); ``IN (SELECT ...)`` turns into a hash join over a sequential
scan of the table, in every batch, once the batch is a large enough share of it."""


def load(url: str, rows: int) -> None:
    """The table, filled, vacuumed and analysed: no dead tuples to start with."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(12,2) NOT NULL,"
            " total_cents bigint, touched integer NOT NULL DEFAULT 0)"
        )
        conn.execute(
            "INSERT INTO orders (id, total) SELECT g, (g %% 100000) / 100.0"
            " FROM generate_series(1, %s) g",
            [rows],
        )
        conn.execute("VACUUM (ANALYZE) orders")


class Workload:
    """Point UPDATEs of random rows from ``writers`` sessions, with their latencies."""

    def __init__(self, url: str, rows: int, writers: int) -> None:
        self.url, self.rows, self.writers = url, rows, writers
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(writers)]

    def __enter__(self) -> Workload:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        rng = random.Random()
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                conn.execute(
                    "UPDATE orders SET touched = touched + 1 WHERE id = %s",
                    [rng.randint(1, self.rows)],
                    prepare=True,
                )
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.005)  # about 150 writes a second per session, not a flood


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def server_cpu(datadir: Path) -> float:
    """CPU seconds the server's processes have used so far: the postmaster's own and its
    exited children's (as the kernel accounts them when reaped), and its live children's.
    CPU time, unlike elapsed time, hardly depends on what else the machine runs."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            stat = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # exited meanwhile: counted in cutime from now on
        total += int(stat[11]) + int(stat[12])
    return total / tick


def client_cpu() -> float:
    """CPU seconds of this process's waited-for children (the kubemigrate command)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_counters(url: str) -> list[int]:
    """WAL written so far (bytes) and checkpoints begun, server-wide: their growth during a
    run is its WAL volume (the workload's included) and the checkpoints it caused."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
            " checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
        assert row is not None
        return [int(row[0]), int(row[1])]


def bloat(url: str) -> dict[str, Any]:
    """The table's size and dead tuples after the run."""
    with psycopg.connect(url, autocommit=True) as conn:
        size = conn.execute("SELECT pg_table_size('orders')").fetchone()
        found: dict[str, Any] = {"table_bytes": size[0] if size else 0}
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            row = conn.execute(
                "SELECT dead_tuple_count, dead_tuple_percent, free_percent"
                " FROM pgstattuple('orders')"
            ).fetchone()
            assert row is not None
            found.update(dead_tuples=row[0], dead_percent=row[1], free_percent=row[2])
        except psycopg.Error:
            conn.execute("SELECT pg_stat_force_next_flush()")
            row = conn.execute(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'orders'"
            ).fetchone()
            found.update(dead_tuples=row[0] if row else None)
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'orders'"
        ).fetchone()
        found["autovacuums"] = row[0] if row else None
        return found


def run_one(
    name: str, sql: str, server: postgres.PostgresServer, tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    server_url = server.url
    slug = f"run{len(list(tmp.glob('run*')))}"
    url = databases.create(server_url, f"bench_{slug}")
    try:
        load(url, args.rows)
        migrations = tmp / slug
        migrations.mkdir()
        (migrations / "1_backfill.up.sql").write_text(sql)
        with Workload(url, args.rows, args.writers) as work:
            time.sleep(1.0)  # the workload's latency before the backfill starts
            before = len(work.latencies)
            wal = server_counters(url)
            cpu = [server_cpu(server.datadir), client_cpu()]
            seconds = timed([str(KUBEMIGRATE), "apply", str(migrations), "--database-url", url])
            cpu = [server_cpu(server.datadir) - cpu[0], client_cpu() - cpu[1]]
            wal = [after - was for after, was in zip(server_counters(url), wal, strict=True)]
            during = work.latencies[before:]
        with psycopg.connect(url, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM orders WHERE total_cents IS NULL").fetchone()
        assert left == (0,), f"{name}: rows left unchanged: {left}"
        return {
            "name": name,
            "seconds": seconds,
            "writes": len(during),
            "p50_ms": percentile(during, 50) * 1000,
            "p99_ms": percentile(during, 99) * 1000,
            "p999_ms": percentile(during, 99.9) * 1000,
            "max_ms": max(during, default=float("nan")) * 1000,
            "server_cpu": cpu[0],
            "client_cpu": cpu[1],
            "wal_bytes": wal[0],
            "checkpoints": wal[1],
            **bloat(url),
        }
    finally:
        databases.drop(server_url, url)


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    single, *batched = results
    print(
        f"# backfill of {args.rows:,} rows: one UPDATE against batched steps (keyset, key"
        f" range), fsync on, {args.writers} writer sessions of point UPDATEs during each"
    )
    print(f"# {machine()}")
    print(
        "| run | time (s) | workload writes (per s) | p50 (ms) | p99 (ms) | p99.9 (ms)"
        " | max (ms) | CPU (s): server, kubemigrate | WAL (MB), checkpoints | table after (MB)"
        " | dead tuples, free space after | autovacuums |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['name']} | {r['seconds']:.1f} | {r['writes']} ({r['writes'] / r['seconds']:.0f})"
            f" | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['p999_ms']:.1f} | {r['max_ms']:.0f}"
            f" | {r['server_cpu']:.1f}, {r['client_cpu']:.1f}"
            f" | {r['wal_bytes'] / 2**20:,.0f}, {r['checkpoints']}"
            f" | {r['table_bytes'] / 2**20:.0f} | {r.get('dead_tuples')},"
            f" {r.get('free_percent', '?')}% | {r.get('autovacuums')} |"
        )
    print()
    for r in batched:
        ratio = r["seconds"] / single["seconds"]
        met = "met" if ratio <= TIME_TARGET else "missed"
        p99 = r["p99_ms"]
        p99_met = "met" if p99 < P99_TARGET_MS else "missed"
        print(
            f"{r['name']}: {ratio:.2f}x the single UPDATE (target {TIME_TARGET}x: {met}),"
            f" p99 write latency {p99:.1f} ms (target < {P99_TARGET_MS:.0f} ms: {p99_met})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument(
        "--marker",
        action="append",
        help="a batched run's marker options (repeatable; default: size=<batch>,"
        " size=<batch> target=200ms, size=<batch> target=200ms synchronous_commit=off)",
    )
    args = parser.parse_args()
    adaptive = f"size={args.batch} target=200ms"
    markers = args.marker or [
        f"size={args.batch}",
        adaptive,
        f"{adaptive} synchronous_commit=off",
    ]
    compile_kubemigrate()
    with tempfile.TemporaryDirectory(prefix="kubemigrate-batch-") as tmp_name:
        tmp = Path(tmp_name)
        datadir = tmp / "pgdata"
        server = postgres.start(datadir, fsync=True)
        try:
            results = [run_one("single UPDATE", SINGLE, server, tmp, args)]
            results += [
                run_one(f"batched, {m}", BATCHED.format(options=m), server, tmp, args)
                for m in markers
            ]
        finally:
            postgres.stop(datadir)
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
