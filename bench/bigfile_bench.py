"""Big-file benchmark: one 4 MB migration of 40,000 statements, ``kubemigrate apply`` against
``psql -f`` of the same file, in the same run, on a server of its own with fsync on.

Runners take turns (round 1 of each, then round 2, ...), each run on a new database; the median
of ``--repeat`` rounds. ``psql -f`` runs each statement in a transaction of its own (a commit,
and a WAL flush, per statement); ``psql -1 -f`` runs the file in one transaction, which is what
``kubemigrate apply`` does with a migration: the same work, and the fair floor. The engine's own
split of the file (in process, no server) is timed too.

    .venv/bin/python bench/bigfile_bench.py [--statements 40000] [--repeat 3]

``PYTHONPATH=<an older checkout>/operator`` measures an older engine the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from engine_bench import KUBEMIGRATE, PSQL, compile_kubemigrate, interleaved, machine, timed  # noqa: E402

from harness import postgres  # noqa: E402

TARGET = 1.5


def write_file(path: Path, statements: int) -> int:
    """The migration: a table, then one INSERT per line (about 100 bytes each); its size."""
    lines = ["CREATE TABLE big (id int PRIMARY KEY, name text NOT NULL, note text);"]
    lines += [
        f"INSERT INTO big VALUES ({i}, 'name {i:06d}', 'a note to make it about a"
        f" hundred bytes: {i:08d}');"
        for i in range(1, statements)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path.stat().st_size


def split_seconds(path: Path, repeat: int) -> list[float]:
    """The engine's split of the file, in process."""
    from kubemigrate.engine.migrate.statements import split_statements  # noqa: PLC0415

    sql = path.read_text()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        split_statements(sql)
        times.append(time.perf_counter() - started)
    return times


def psql(file: Path, *extra: str) -> Callable[[str], float]:
    return lambda url: timed(
        [str(PSQL), "-q", "-X", "-v", "ON_ERROR_STOP=1", *extra, "-d", url, "-f", str(file)]
    )


def ram() -> str:
    total = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return f"{int(total) / 1024 / 1024:.1f} GiB RAM"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    compile_kubemigrate()
    with tempfile.TemporaryDirectory(prefix="kubemigrate-bigfile-") as tmp_name:
        tmp = Path(tmp_name)
        migrations = tmp / "migrations"
        file = migrations / "0001_big.up.sql"
        size = write_file(file, args.statements)
        datadir = tmp / "pgdata"
        server = postgres.start(datadir, fsync=True)
        try:
            rows = interleaved(
                args.repeat,
                server.url,
                [
                    ("psql -f (a transaction per statement)", psql(file)),
                    ("psql -1 -f (one transaction)", psql(file, "-1")),
                    (
                        "kubemigrate apply",
                        lambda url: timed(
                            [str(KUBEMIGRATE), "apply", str(migrations), "--database-url", url]
                        ),
                    ),
                ],
            )
        finally:
            postgres.stop(datadir)
        split = split_seconds(file, args.repeat)
    report(args, size, rows, split)
    return 0


def report(
    args: argparse.Namespace, size: int, rows: list[tuple[str, list[float]]], split: list[float]
) -> None:
    """The results as Markdown, for docs/benchmarks.md."""
    medians = {name: statistics.median(times) for name, times in rows}
    ours = medians["kubemigrate apply"]
    print(
        f"# one migration of {args.statements} statements ({size / 1e6:.1f} MB), fsync on,"
        f" median of {args.repeat}"
    )
    print(f"# {machine()}, {ram()}")
    print("| runner | median (s) | kubemigrate apply against it | runs (s) |")
    print("|---|---|---|---|")
    for name, times in rows:
        ratio = ours / medians[name]
        verdict = (
            ""
            if name == "kubemigrate apply"
            else (
                f"{ratio:.2f}x"
                + (" (target 1.5x: met)" if ratio <= TARGET else " (target 1.5x: missed)")
            )
        )
        print(
            f"| {name} | {medians[name]:.2f} | {verdict} | "
            + ", ".join(f"{t:.2f}" for t in times)
            + " |"
        )
    ours_runs = dict(rows)["kubemigrate apply"]
    for name, times in rows:
        if name != "kubemigrate apply":
            paired = [o / t for o, t in zip(ours_runs, times, strict=True)]
            print(
                f"\nkubemigrate apply / {name}, round by round: median"
                f" {statistics.median(paired):.2f}x (rounds: "
                + ", ".join(f"{r:.2f}" for r in paired)
                + ")"
            )
    print(
        f"\nsplitting the file in process: median {statistics.median(split):.2f} s"
        f" (runs: {', '.join(f'{t:.2f}' for t in split)})"
    )


if __name__ == "__main__":
    sys.exit(main())
