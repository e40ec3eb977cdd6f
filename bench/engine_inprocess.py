"""The engine alone, in process: what ``Migrator.apply`` costs without interpreter start-up, CLI
output or reading files, next to the psql floor, interleaved so both see the same machine.

Reports wall time and client CPU per migration, a re-run with nothing to do, and ``validate``
over 10,000 applied (baselined) checksums. ``engine_bench.py`` measures whole commands.

    .venv/bin/python bench/engine_inprocess.py [--count 1000] [--repeat 5] [--database-url URL]

Without --database-url a PostgreSQL server of its own is started with fsync on.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine_bench import PSQL, write_floor  # noqa: E402

from harness import databases, postgres  # noqa: E402
from kubemigrate.engine.migrate.migrator import Migrator  # noqa: E402
from kubemigrate.engine.migrate.sources import MigrationSource  # noqa: E402


def measure(admin: str, count: int, repeat: int, validate_count: int) -> None:
    sources = [
        MigrationSource(str(i), f"t {i}", f"CREATE TABLE t_{i} (id int);\n")
        for i in range(1, count + 1)
    ]
    floors, walls, cpus, reruns = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        floor_file = Path(tmp) / "floor.sql"
        write_floor(floor_file, count)
        for _ in range(repeat):
            url = databases.create(admin, prefix="bench")
            try:
                start = time.perf_counter()
                subprocess.run(
                    [
                        str(PSQL),
                        "-q",
                        "-X",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-d",
                        url,
                        "-f",
                        str(floor_file),
                    ],
                    check=True,
                    capture_output=True,
                )
                floors.append(time.perf_counter() - start)
            finally:
                databases.drop(admin, url)
            url = databases.create(admin, prefix="bench")
            try:
                engine = Migrator(url)
                start, cpu = time.perf_counter(), time.process_time()
                assert engine.apply(sources).ok
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
                start = time.perf_counter()
                assert engine.apply(sources).results == ()
                reruns.append(time.perf_counter() - start)
            finally:
                databases.drop(admin, url)
        url = databases.create(admin, prefix="bench")
        try:
            many = [
                MigrationSource(str(i), "", f"SELECT {i};\n") for i in range(1, validate_count + 1)
            ]
            engine = Migrator(url)
            engine.baseline(many, str(validate_count))
            validations = []
            for _ in range(repeat):
                start = time.perf_counter()
                assert engine.validate(many).ok
                validations.append(time.perf_counter() - start)
        finally:
            databases.drop(admin, url)

    floor, wall = statistics.median(floors), statistics.median(walls)
    print(f"# {count} migrations, median of {repeat}, interleaved with the floor")
    print(
        f"floor (psql):        {floor:.3f} s  ({floor / count * 1000:.2f} ms/migration)  runs "
        + ", ".join(f"{t:.3f}" for t in floors)
    )
    print(
        f"Migrator.apply:        {wall:.3f} s  ({wall / count * 1000:.2f} ms/migration, "
        f"{wall / floor:.2f}x floor, client CPU "
        f"{statistics.median(cpus) / count * 1e6:.0f} us/migration)  runs "
        + ", ".join(f"{t:.3f}" for t in walls)
    )
    print(f"re-run, nothing to do: {statistics.median(reruns) * 1000:.1f} ms")
    print(f"validate {validate_count} applied: {statistics.median(validations) * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--validate-count", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="superuser URL of a server")
    args = parser.parse_args()
    if args.database_url:
        measure(args.database_url, args.count, args.repeat, args.validate_count)
        return 0
    with tempfile.TemporaryDirectory(prefix="kubemigrate-bench-") as tmp:
        datadir = Path(tmp) / "pgdata"
        server = postgres.start(datadir, fsync=True)
        try:
            measure(server.url, args.count, args.repeat, args.validate_count)
        finally:
            postgres.stop(datadir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
