"""The migrations the engine's fault suite kills runs of: every path the engine has.

- one at a time (rows affected, a pg_sleep): 001, 014, 026;
- batched (plain DDL, several in a row): 002-012, 015-024;
- no-transaction: 013 (two index builds, one slow, and VACUUM), 025 (a table, rows, an index
  build, a pause, a slow index build), both with DROP INDEX CONCURRENTLY to roll back.

The slow index builds call ``slow()`` (10 ms a row) so that builds take long enough for kills
to land inside them, including the window in which the server has finished a statement the
client has not recorded.
"""

from __future__ import annotations

from pathlib import Path

MIGRATIONS: dict[str, tuple[str, str]] = {
    "001_accounts": (
        "CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL);\n"
        "INSERT INTO accounts SELECT g, 'user' || g || '@example.com'"
        " FROM generate_series(1, 20000) g;\n",
        "DROP TABLE accounts;\n",
    ),
    "012_slow_function": (
        "CREATE FUNCTION slow(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS\n"
        "  $$ BEGIN PERFORM pg_sleep(0.01); RETURN i; END $$;\n",
        "DROP FUNCTION slow(int);\n",
    ),
    "013_account_indexes": (
        "-- kubemigrate: no-transaction\n"
        "CREATE INDEX CONCURRENTLY accounts_email ON accounts (email);\n"
        "CREATE INDEX CONCURRENTLY accounts_slow ON accounts (slow(id)) WHERE id <= 40;\n"
        "VACUUM ANALYZE accounts;\n",
        "-- kubemigrate: no-transaction\n"
        "DROP INDEX CONCURRENTLY accounts_slow;\n"
        "DROP INDEX CONCURRENTLY accounts_email;\n",
    ),
    "014_scores": (
        "ALTER TABLE accounts ADD COLUMN score int;\n"
        "UPDATE accounts SET score = id % 100;\n"
        "SELECT pg_sleep(0.15);\n",
        "ALTER TABLE accounts DROP COLUMN score;\nSELECT pg_sleep(0.15);\n",
    ),
    "025_events": (
        "-- kubemigrate: no-transaction\n"
        "CREATE TABLE events (id int PRIMARY KEY, account_id int, at timestamptz);\n"
        "INSERT INTO events SELECT g, g % 20000, timestamptz '2026-01-01' + g * interval '1s'"
        " FROM generate_series(1, 20000) g;\n"
        "CREATE INDEX CONCURRENTLY events_at ON events (at);\n"
        "SELECT pg_sleep(0.15);\n"
        "CREATE INDEX CONCURRENTLY events_slow ON events (slow(id)) WHERE id <= 30;\n",
        "-- kubemigrate: no-transaction\n"
        "DROP INDEX CONCURRENTLY events_slow;\n"
        "SELECT pg_sleep(0.15);\n"
        "DROP INDEX CONCURRENTLY events_at;\n"
        "DROP TABLE events;\n",
    ),
    "026_account_view": (
        "CREATE VIEW active_accounts AS SELECT id, email FROM accounts WHERE score > 50;\n"
        "SELECT pg_sleep(0.1);\n",
        "DROP VIEW active_accounts;\n",
    ),
}
for _number in [*range(2, 12), *range(15, 25)]:
    MIGRATIONS[f"{_number:03d}_table_{_number}"] = (
        f"CREATE TABLE table_{_number} (id int PRIMARY KEY, name text NOT NULL);\n"
        f"CREATE INDEX table_{_number}_name ON table_{_number} (name);\n",
        f"DROP TABLE table_{_number};\n",
    )


def write(directory: Path) -> Path:
    """The migrations as files in directory (up and down)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, (up, down) in MIGRATIONS.items():
        (directory / f"{name}.up.sql").write_text(up)
        (directory / f"{name}.down.sql").write_text(down)
    return directory
