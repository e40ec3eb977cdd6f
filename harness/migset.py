"""A generated migrations directory of mixed kinds, for MigrationSet tests and the benchmark.

Each version has an up and a down file. Kinds cycle: DDL (a table), DML with rows (into the
first table), a no-transaction index build (``CREATE INDEX CONCURRENTLY``), and an empty file.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("ddl", "dml", "notx", "empty")


def version_of(i: int) -> str:
    return f"{i:05d}"


def files(count: int, *, fail_at: int | None = None) -> dict[str, str]:
    """File name -> SQL for versions 1..count (the one at fail_at fails with 42P01)."""
    out: dict[str, str] = {
        "00001_base.up.sql": "CREATE TABLE base (id int PRIMARY KEY, note text);\n",
        "00001_base.down.sql": "DROP TABLE base;\n",
    }
    for i in range(2, count + 1):
        v, kind = version_of(i), KINDS[i % len(KINDS)]
        if i == fail_at:
            up = "CREATE TABLE broken_ok (id int);\nINSERT INTO no_such_table VALUES (1);\n"
            down = "DROP TABLE IF EXISTS broken_ok;\n"
        elif kind == "ddl":
            up = f"CREATE TABLE t{v} (id bigint PRIMARY KEY, v text);\n"
            down = f"DROP TABLE t{v};\n"
        elif kind == "dml":
            lo, hi = i * 10, i * 10 + 9
            up = f"INSERT INTO base SELECT g, 'v{v}' FROM generate_series({lo}, {hi}) g;\n"
            down = f"DELETE FROM base WHERE id BETWEEN {lo} AND {hi};\n"
        elif kind == "notx":
            up = (
                "-- kubemigrate: no-transaction\n"
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS base_note_{v} ON base (note);\n"
            )
            down = (
                "-- kubemigrate: no-transaction\n"
                f"DROP INDEX CONCURRENTLY IF EXISTS base_note_{v};\n"
            )
        else:
            up, down = "", ""
        out[f"{v}_{kind}_{i}.up.sql"] = up
        out[f"{v}_{kind}_{i}.down.sql"] = down
    return out


def write(directory: Path, count: int, *, fail_at: int | None = None) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    made = files(count, fail_at=fail_at)
    for name, text in made.items():
        (directory / name).write_text(text)
    return made


def configmaps(name: str, made: dict[str, str], *, per: int = 200) -> list[dict[str, object]]:
    """The files as ConfigMaps of at most per keys each: name-0, name-1, ..."""
    names = sorted(made)
    chunks = [names[i : i + per] for i in range(0, len(names), per)]
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-{n}"},
            "data": {k: made[k] for k in chunk},
        }
        for n, chunk in enumerate(chunks)
    ]
