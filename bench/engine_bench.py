"""Engine benchmark: 1,000 trivial migrations on a fresh database, fsync on, median of 5.

Compares, in one run on one server: the floor (one psql session, a transaction and a history
row per file), ``kubemigrate apply``, Alembic (per-migration transactions) and yoyo when they are
installed in ``.venv-bench`` (``python3 -m venv .venv-bench && .venv-bench/bin/pip install
alembic yoyo-migrations 'psycopg[binary]'``); then a re-run with nothing to do, and
``kubemigrate validate`` over 10,000 applied (baselined) checksums. Every time is the wall clock
of a whole command, interpreter start-up included, as a user or a Job would see it.

    .venv/bin/python bench/engine_bench.py [--count 1000] [--repeat 5] [--validate-count 10000]
"""

from __future__ import annotations

import argparse
import compileall
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

import kubemigrate  # noqa: E402
from harness import databases, postgres  # noqa: E402
from harness.paths import PG_BIN  # noqa: E402

KUBEMIGRATE = Path(sys.executable).with_name("kubemigrate")
BENCH_BIN = REPO / ".venv-bench" / "bin"
PSQL = PG_BIN / "psql" if (PG_BIN / "psql").exists() else Path(shutil.which("psql") or "psql")


def compile_kubemigrate() -> None:
    """Write kubemigrate's bytecode, as installing it does (pip compiles a package's modules,
    and the image is built that way). The dev venv's install is editable and this environment
    sets PYTHONDONTWRITEBYTECODE, so without this every timed command would compile each module
    changed since the last compile: a cost no installed copy pays."""
    compileall.compile_dir(Path(kubemigrate.__file__).parent, quiet=1)


def timed(cmd: list[str], **kw: object) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def sql_of(i: int) -> str:
    return f"CREATE TABLE t_{i} (id int);\n"


def write_kubemigrate(directory: Path, count: int, sql: Callable[[int], str] = sql_of) -> None:
    directory.mkdir(parents=True)
    for i in range(1, count + 1):
        (directory / f"{i:05d}_t_{i}.up.sql").write_text(sql(i))


def write_floor(path: Path, count: int) -> None:
    lines = ["CREATE TABLE history (version int PRIMARY KEY, applied_at timestamptz);"]
    for i in range(1, count + 1):
        lines += [
            "BEGIN;",
            sql_of(i).strip(),
            f"INSERT INTO history VALUES ({i}, now());",
            "COMMIT;",
        ]
    path.write_text("\n".join(lines) + "\n")


def write_yoyo(directory: Path, count: int) -> None:
    directory.mkdir(parents=True)
    for i in range(1, count + 1):
        (directory / f"{i:05d}_t_{i}.sql").write_text(sql_of(i))


ALEMBIC_ENV = """
from alembic import context
from sqlalchemy import create_engine

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
"""


def write_alembic(directory: Path, count: int, url: str) -> Path:
    versions = directory / "versions"
    versions.mkdir(parents=True)
    (directory / "env.py").write_text(ALEMBIC_ENV)
    for i in range(1, count + 1):
        down = f'"r{i - 1:05d}"' if i > 1 else "None"
        (versions / f"r{i:05d}.py").write_text(
            f'from alembic import op\nrevision = "r{i:05d}"\ndown_revision = {down}\n'
            f"branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n"
            f'    op.execute("{sql_of(i).strip()}")\n\n\ndef downgrade():\n    pass\n'
        )
    ini = directory / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {directory}\nsqlalchemy.url = {url}\n")
    return ini


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def median_of(repeat: int, admin_url: str, run: Callable[[str], float]) -> list[float]:
    times = []
    for _ in range(repeat):
        url = databases.create(admin_url, prefix="bench")
        try:
            times.append(run(url))
        finally:
            databases.drop(admin_url, url)
    return times


def interleaved(
    repeat: int, admin_url: str, runners: list[tuple[str, Callable[[str], float]]]
) -> list[tuple[str, list[float]]]:
    """Each runner's times, the runners taking turns (round 1 of each, then round 2, ...):
    the disk's fsync latency drifts over minutes, and turns spread the drift over all."""
    times: dict[str, list[float]] = {name: [] for name, _ in runners}
    for _ in range(repeat):
        for name, run in runners:
            times[name] += median_of(1, admin_url, run)
    return list(times.items())


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    version = subprocess.run(
        [str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {version}, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--validate-count", type=int, default=10_000)
    args = parser.parse_args()
    count = args.count
    compile_kubemigrate()

    with tempfile.TemporaryDirectory(prefix="kubemigrate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        datadir = tmp / "pgdata"
        server = postgres.start(datadir, fsync=True)
        try:
            admin = server.url
            km_dir = tmp / "kubemigrate"
            write_kubemigrate(km_dir, count)
            floor_file = tmp / "floor.sql"
            write_floor(floor_file, count)
            runners: list[tuple[str, Callable[[str], float]]] = [
                (
                    "psql, one session, transaction + history row per file (floor)",
                    lambda url: timed(
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
                        ]
                    ),
                )
            ]
            rerun: list[float] = []

            def kubemigrate(url: str) -> float:
                elapsed = timed([str(KUBEMIGRATE), "apply", str(km_dir), "--database-url", url])
                rerun.append(timed([str(KUBEMIGRATE), "apply", str(km_dir), "--database-url", url]))
                return elapsed

            runners.append(("kubemigrate apply", kubemigrate))
            if (BENCH_BIN / "alembic").exists():

                def alembic(url: str) -> float:
                    ini = write_alembic(
                        tmp / f"alembic-{time.monotonic_ns()}", count, sqlalchemy_url(url)
                    )
                    return timed([str(BENCH_BIN / "alembic"), "-c", str(ini), "upgrade", "head"])

                runners.append(("Alembic, transaction_per_migration", alembic))
            if (BENCH_BIN / "yoyo").exists():
                yoyo_dir = tmp / "yoyo"
                write_yoyo(yoyo_dir, count)
                runners.append(
                    (
                        "yoyo apply",
                        lambda url: timed(
                            [
                                str(BENCH_BIN / "yoyo"),
                                "apply",
                                "--batch",
                                "--no-config-file",
                                "--database",
                                sqlalchemy_url(url),
                                str(yoyo_dir),
                            ]
                        ),
                    )
                )
            rows = interleaved(args.repeat, admin, runners)

            val_dir = tmp / "validate"
            write_kubemigrate(val_dir, args.validate_count, lambda i: f"SELECT {i};\n")

            def validate(url: str) -> float:
                timed(
                    [
                        str(KUBEMIGRATE),
                        "baseline",
                        str(val_dir),
                        "--database-url",
                        url,
                        "--version",
                        str(args.validate_count),
                    ]
                )
                return timed([str(KUBEMIGRATE), "validate", str(val_dir), "--database-url", url])

            validation = median_of(args.repeat, admin, validate)
            together = median_of(args.repeat, admin, lambda url: three_at_once(km_dir, url, count))
        finally:
            postgres.stop(datadir)

    report(args, rows, rerun, validation, together)
    return 0


def report(
    args: argparse.Namespace,
    rows: list[tuple[str, list[float]]],
    rerun: list[float],
    validation: list[float],
    together: list[float],
) -> None:
    """The results as Markdown, for docs/benchmarks.md."""
    count = args.count
    floor = statistics.median(rows[0][1])
    paired = [t / f for t, f in zip(rows[1][1], rows[0][1], strict=True)]
    print(f"# {count} migrations, fsync on, median of {args.repeat}")
    print(f"# {machine()}")
    print("| runner | apply (s) | per migration (ms) | vs floor | runs (s) |")
    print("|---|---|---|---|---|")
    for name, times in rows:
        m = statistics.median(times)
        print(
            f"| {name} | {m:.2f} | {m / count * 1000:.2f} | {m / floor:.2f}x | "
            + ", ".join(f"{t:.2f}" for t in times)
            + " |"
        )
    print(
        f"\nkubemigrate apply / floor within each round: median "
        f"{statistics.median(paired):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in paired)})"
    )
    print(
        f"kubemigrate re-run with nothing to do: {statistics.median(rerun):.2f} s "
        f"(runs: {', '.join(f'{t:.2f}' for t in rerun)})"
    )
    print(
        f"kubemigrate validate, {args.validate_count} applied checksums: "
        f"{statistics.median(validation):.2f} s "
        f"(runs: {', '.join(f'{t:.2f}' for t in validation)})"
    )
    print(
        f"three kubemigrate apply started together: all exit 0, each of {count} applied"
        f" once, {statistics.median(together):.2f} s "
        f"(runs: {', '.join(f'{t:.2f}' for t in together)})"
    )


def three_at_once(directory: Path, url: str, count: int) -> float:
    """Three ``kubemigrate apply`` started together on a fresh database: the wall clock until
    the last exits; RuntimeError unless all exit 0 and each migration is applied once."""
    start = time.perf_counter()
    runners = [
        subprocess.Popen(
            [
                str(KUBEMIGRATE),
                "apply",
                str(directory),
                "--database-url",
                url,
                "--lock-wait",
                "600",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    failures = [
        (r.args, code, r.stderr.read() if r.stderr else "")
        for r in runners
        if (code := r.wait()) != 0
    ]
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"a runner failed: {failures}")
    applied = subprocess.run(
        [
            str(PSQL),
            "-X",
            "-A",
            "-t",
            "-d",
            url,
            "-c",
            "SELECT count(*), count(DISTINCT version) FROM kubemigrate.history"
            " WHERE kind = 'apply' AND status = 'success'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if applied != f"{count}|{count}":
        raise RuntimeError(
            f"expected each of {count} applied once, found (rows|versions) {applied}"
        )
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
