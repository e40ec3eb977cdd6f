"""Object-storage benchmark: backups to and restores from a local S3 server (moto, loopback).

A pgbench database (``pgbench -i -s 70``: about 1 GB) on a PostgreSQL server of the benchmark's
own (fsync on, in a temporary directory), and moto in server mode with authentication on. In one
run, interleaved, medians of ``--repeat`` runs each:

- backup: ``pg_dump -Fc | obstore.put`` (the same library, streamed, nothing else) against
  ``kubemigrate backup -o s3://...`` (adds the sha256 and the sidecar);
- restore: ``obstore.get | pg_restore --single-transaction`` (the same one-transaction restore
  kubemigrate runs) and plain ``obstore.get | pg_restore`` against ``kubemigrate restore
  s3://...`` (adds the size and sha256 checks, the emptiness check, row counts afterwards);
- parallel: ``kubemigrate backup --format directory -o s3://...`` and ``kubemigrate restore``
  with ``--jobs 1`` against ``--jobs 2``.

Times are wall clock of whole commands, interpreter start-up included. Target: kubemigrate within
1.15x of the baseline in the same run.

    .venv/bin/python bench/objstore_bench.py [--scale 70] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "bench"))

from backup_bench import PGBENCH, Runs, machine, timed  # noqa: E402

from harness import databases, postgres, s3  # noqa: E402

KUBEMIGRATE = Path(sys.executable).with_name("kubemigrate")
PG_DUMP = shutil.which("pg_dump") or "pg_dump"
PG_RESTORE = shutil.which("pg_restore") or "pg_restore"

BASELINE_UPLOAD = """
import subprocess, sys, obstore
from obstore.store import S3Store
store = S3Store(sys.argv[1], client_options={"allow_http": True})
dump = subprocess.Popen(["%(pg_dump)s", "-Fc", sys.argv[3]], stdout=subprocess.PIPE)
obstore.put(store, sys.argv[2], iter(lambda: dump.stdout.read(1 << 20), b""),
            chunk_size=16 << 20, max_concurrency=4)
sys.exit(dump.wait())
"""
BASELINE_RESTORE = """
import subprocess, sys, obstore
from obstore.store import S3Store
store = S3Store(sys.argv[1], client_options={"allow_http": True})
extra = sys.argv[4:]
restore = subprocess.Popen(["%(pg_restore)s", *extra, "-d", sys.argv[3]], stdin=subprocess.PIPE)
for piece in obstore.get(store, sys.argv[2]).stream(min_chunk_size=1 << 20):
    restore.stdin.write(piece)
restore.stdin.close()
sys.exit(restore.wait())
"""


def with_env(env: dict[str, str]) -> None:
    os.environ.update(env)


def bench_backup(url: str, bucket: str, repeat: int, runs: Runs) -> None:
    upload = BASELINE_UPLOAD % {"pg_dump": PG_DUMP}
    for i in range(repeat):
        runs.add(
            "`pg_dump -Fc | obstore.put`",
            timed([sys.executable, "-c", upload, bucket, f"base/{i}.dump", url]),
        )
        runs.add(
            "`kubemigrate backup -o s3://`",
            timed([str(KUBEMIGRATE), "backup", "--database-url", url, "-o", f"s3://{bucket}/km/{i}.dump"]),
        )  # fmt: skip


def bench_restore(admin: str, bucket: str, repeat: int, runs: Runs) -> None:
    download = BASELINE_RESTORE % {"pg_restore": PG_RESTORE}
    base = [sys.executable, "-c", download, bucket, "base/0.dump"]
    ours = [str(KUBEMIGRATE), "restore", f"s3://{bucket}/km/0.dump", "--database-url"]
    variants = [
        ("`obstore.get | pg_restore`", lambda u: [*base, u]),
        (
            "`obstore.get | pg_restore --single-transaction`",
            lambda u: [*base, u, "--single-transaction", "--exit-on-error"],
        ),
        ("`kubemigrate restore s3://`", lambda u: [*ours, u]),
    ]
    for _ in range(repeat):
        for name, command in variants:
            url = databases.create(admin, prefix="restore")
            try:
                runs.add(name, timed(command(url)))
            finally:
                databases.drop(admin, url)


def bench_parallel(url: str, admin: str, bucket: str, repeat: int, runs: Runs) -> None:
    for i in range(repeat):
        for jobs in ("1", "2"):
            where = f"s3://{bucket}/dir/{i}-{jobs}.tar"
            runs.add(
                f"`kubemigrate backup --format directory --jobs {jobs}`",
                timed([str(KUBEMIGRATE), "backup", "--database-url", url, "-o", where,
                       "--format", "directory", "--jobs", jobs]),
            )  # fmt: skip
        for jobs in ("1", "2"):
            target = databases.create(admin, prefix="restore")
            try:
                runs.add(
                    f"`kubemigrate restore --jobs {jobs}` (directory)",
                    timed([str(KUBEMIGRATE), "restore", f"s3://{bucket}/dir/{i}-1.tar",
                           "--database-url", target, "--jobs", jobs]),
                )  # fmt: skip
            finally:
                databases.drop(admin, target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: about 1 GB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubemigrate-s3-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server = postgres.start(tmp / "pgdata", fsync=True)
        try:
            with s3.running(tmp / "moto.log") as store:
                with_env(store.env())
                bucket = store.new_bucket()
                url = databases.create(server.url, prefix="pgbench")
                print(f"pgbench -i -s {args.scale} ...", file=sys.stderr, flush=True)
                init = timed([str(PGBENCH), "-i", "-q", "-s", str(args.scale), url])
                pretty = "SELECT pg_size_pretty(pg_database_size(current_database()))"
                size = subprocess.run(
                    ["psql", "-XAtc", pretty, url], capture_output=True, text=True, check=True
                ).stdout.strip()
                print(f"  initialised {size} in {init:.0f}s", file=sys.stderr)
                runs = Runs()
                bench_backup(url, bucket, args.repeat, runs)
                bench_restore(server.url, bucket, args.repeat, runs)
                bench_parallel(url, server.url, bucket, args.repeat, runs)
                dump_size = store.client().head_object(Bucket=bucket, Key="km/0.dump")[
                    "ContentLength"
                ]
                where = machine(server.url)
        finally:
            postgres.stop(tmp / "pgdata")
    print(f"\nmachine: {where}")
    print(
        f"database: pgbench scale {args.scale}, {size}; custom dump {dump_size / 2**20:.0f} MiB\n"
    )
    print("| command | median s | ratio | target | runs |")
    print("|---|---|---|---|---|")
    print(runs.row("`pg_dump -Fc | obstore.put`", "`pg_dump -Fc | obstore.put`", "baseline"))
    print(runs.row("`kubemigrate backup -o s3://`", "`pg_dump -Fc | obstore.put`", "<= 1.15x"))
    print(runs.row("`obstore.get | pg_restore`", "`obstore.get | pg_restore`", "baseline"))
    print(
        runs.row(
            "`obstore.get | pg_restore --single-transaction`", "`obstore.get | pg_restore`", "-"
        )
    )
    print(
        runs.row(
            "`kubemigrate restore s3://`",
            "`obstore.get | pg_restore --single-transaction`",
            "<= 1.15x",
        )
    )
    b1, b2 = (
        "`kubemigrate backup --format directory --jobs 1`",
        "`kubemigrate backup --format directory --jobs 2`",
    )
    r1, r2 = (
        "`kubemigrate restore --jobs 1` (directory)",
        "`kubemigrate restore --jobs 2` (directory)",
    )
    print(runs.row(b1, b1, "baseline"))
    print(runs.row(b2, b1, "< 1x"))
    print(runs.row(r1, r1, "baseline"))
    print(runs.row(r2, r1, "< 1x"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
