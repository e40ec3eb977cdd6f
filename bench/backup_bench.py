"""Backup and restore benchmark: ``kubemigrate backup``/``restore`` against raw pg_dump/pg_restore.

A pgbench database (``pgbench -i -s 70``: about 1 GB) on a PostgreSQL server of the benchmark's
own, fsync on, in a temporary directory outside the repository. In one run, interleaved, median
of 5 backups and 3 restores of each kind: ``pg_dump -Fc -f`` against ``kubemigrate backup``
(hashes the file, writes the sidecar) and ``kubemigrate backup --row-counts`` (also counts every
table's rows in the dump's snapshot, as verified backups do); then ``pg_restore``, plain and with
``--single-transaction`` as kubemigrate runs it, against ``kubemigrate restore`` (sha256 check,
emptiness check, single transaction, row counts afterwards), each into a fresh database. Times
are wall clock of whole commands, interpreter start-up included. Targets: backup <= 1.1x
pg_dump, restore <= 1.1x pg_restore.

    .venv/bin/python bench/backup_bench.py [--scale 70] [--backup-repeat 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from harness import databases, postgres  # noqa: E402
from harness.paths import PG_BIN  # noqa: E402
from kubemigrate.engine.backup.dumpfile import digest  # noqa: E402

KUBEMIGRATE = Path(sys.executable).with_name("kubemigrate")
PGBENCH = PG_BIN / "pgbench"
PG_DUMP = shutil.which("pg_dump") or "pg_dump"
PG_RESTORE = shutil.which("pg_restore") or "pg_restore"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:2]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def machine(server_url: str) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    version = subprocess.run(
        ["psql", "-XAtc", "SHOW server_version", server_url],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"PostgreSQL {version}"
    )


class Runs:
    """Times per variant, measured interleaved so that machine noise spreads evenly."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def add(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)
        print(f"  {name}: {seconds:.2f}s", file=sys.stderr, flush=True)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def row(self, name: str, baseline: str, target: str) -> str:
        runs = ", ".join(f"{t:.2f}" for t in self.times[name])
        ratio = self.median(name) / self.median(baseline)
        return f"| {name} | {self.median(name):.2f} | {ratio:.2f}x | {target} | {runs} |"


def bench_backup(url: str, work: Path, repeat: int, runs: Runs) -> Path:
    variants: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("`pg_dump -Fc -f`", lambda out: [PG_DUMP, "-Fc", "-f", str(out), url]),
        (
            "`kubemigrate backup`",
            lambda out: [str(KUBEMIGRATE), "backup", "--database-url", url, "-o", str(out)],
        ),
        (
            "`kubemigrate backup --row-counts`",
            lambda out: [
                str(KUBEMIGRATE),
                "backup",
                "--database-url",
                url,
                "-o",
                str(out),
                "--row-counts",
            ],
        ),
    ]
    keep = work / "bench.dump"
    for i in range(repeat):
        for index, (name, command) in enumerate(variants):
            out = work / f"b{i}_{index}.dump"
            runs.add(name, timed(command(out)))
            if i == 0 and index == 2:
                shutil.copy(out, keep)
                shutil.copy(
                    out.with_name(out.name + ".meta.json"), keep.with_name(keep.name + ".meta.json")
                )
            out.unlink()
            out.with_name(out.name + ".meta.json").unlink(missing_ok=True)
    start = time.perf_counter()
    digest(keep)
    runs.add("sha256 of the dump (page cache)", time.perf_counter() - start)
    return keep


def bench_restore(admin_url: str, dump: Path, repeat: int, runs: Runs) -> None:
    variants: list[tuple[str, Callable[[str], list[str]]]] = [
        ("`pg_restore -d`", lambda url: [PG_RESTORE, "-d", url, str(dump)]),
        (
            "`pg_restore --single-transaction -d`",
            lambda url: [
                PG_RESTORE,
                "--single-transaction",
                "--exit-on-error",
                "-d",
                url,
                str(dump),
            ],
        ),
        (
            "`kubemigrate restore`",
            lambda url: [str(KUBEMIGRATE), "restore", str(dump), "--database-url", url],
        ),
    ]
    for _ in range(repeat):
        for name, command in variants:
            url = databases.create(admin_url, prefix="restore")
            try:
                runs.add(name, timed(command(url)))
            finally:
                databases.drop(admin_url, url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: about 1 GB)")
    parser.add_argument("--repeat", type=int, default=3, help="restores of each kind")
    parser.add_argument(
        "--backup-repeat",
        type=int,
        default=5,
        help="backups of each kind (they are quick, and noisier)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kubemigrate-backup-bench-") as tmp_name:
        tmp = Path(tmp_name)
        datadir = tmp / "pgdata"
        server = postgres.start(datadir, fsync=True)
        try:
            url = databases.create(server.url, prefix="pgbench")
            print(f"pgbench -i -s {args.scale} ...", file=sys.stderr, flush=True)
            init = timed([str(PGBENCH), "-i", "-q", "-s", str(args.scale), url])
            size = subprocess.run(
                [
                    "psql",
                    "-XAtc",
                    "SELECT pg_size_pretty(pg_database_size(current_database()))",
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            print(f"  initialised {size} in {init:.0f}s", file=sys.stderr)
            work = tmp / "dumps"
            work.mkdir()
            runs = Runs()
            dump = bench_backup(url, work, args.backup_repeat, runs)
            dump_mib = dump.stat().st_size / 1024 / 1024
            bench_restore(server.url, dump, args.repeat, runs)
            info = machine(server.url)
        finally:
            postgres.stop(datadir)

    print(
        f"\nDatabase: pgbench scale {args.scale} ({size}; custom dump {dump_mib:.1f} MiB); "
        f"machine: {info}; median of {args.backup_repeat} backups and "
        f"{args.repeat} restores of each kind.\n"
    )
    print("| command | median (s) | vs raw | target | runs (s) |")
    print("|---|---|---|---|---|")
    print(runs.row("`pg_dump -Fc -f`", "`pg_dump -Fc -f`", ""))
    print(runs.row("`kubemigrate backup`", "`pg_dump -Fc -f`", "<= 1.1x"))
    print(runs.row("`kubemigrate backup --row-counts`", "`pg_dump -Fc -f`", ""))
    print(runs.row("sha256 of the dump (page cache)", "`pg_dump -Fc -f`", ""))
    print(runs.row("`pg_restore -d`", "`pg_restore -d`", ""))
    print(runs.row("`pg_restore --single-transaction -d`", "`pg_restore -d`", ""))
    print(runs.row("`kubemigrate restore`", "`pg_restore -d`", "<= 1.1x"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
