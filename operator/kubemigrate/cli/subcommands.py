"""Every subcommand as the parser knows it: name, help, arguments, and the function that runs it.

The functions are named, not imported: their modules (``cli.migrate``, ``cli.preflight``,
``cli.backup``) load the engine, and are imported only when their subcommand runs. So building
the parser, and ``--help``, never load the database driver, the SQL parser or the backup engine.
A new subcommand is one more entry in SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from kubemigrate.cli import options
from kubemigrate.cli.command import Command, database_url_arg, seconds

MIGRATE_EPILOG = """\
exit status: 0 success; 1 a migration failed; 2 usage or source error (nothing run);
3 cannot connect; 4 drift, out-of-order or newer history (nothing run); 5 lock wait timed out;
130 interrupted.

The database URL comes from --database-url or DATABASE_URL, e.g.
postgresql://user:password@host:5432/dbname. Passwords are never printed.
"""

BACKUP_EPILOG = """\
exit status: 0 success; 1 failed, refused, or row counts differ; 2 usage error (nothing run);
3 cannot connect; 130 interrupted.

The database URL comes from --database-url or DATABASE_URL. Passwords are never printed and
never passed on a command line: pg_dump and pg_restore get them through PGPASSWORD.
"""

MANIFESTS_EPILOG = """\
exit status: 0 printed; 2 the directory or an option is invalid (nothing printed).

  kubemigrate manifests migrations/ --name orders --secret orders-db | kubectl apply -f -

ConfigMaps are named <name>-migrations[-<n>]-<hash of their files> and immutable, so a changed
file is a changed MigrationSet spec: a new run, and a reviewable diff in git.
"""

FLEET_EPILOG = """\
exit status: 0 the wave's ledger says stop (every target claimed, halted or paused), failed
targets included; 1 the worker itself cannot go on (no API server, no ledger).

Each target's database URL is read from its Secret through the API with the pod's
ServiceAccount token; no URL is ever printed. One JSON line per target on stdout.
"""

Options = Callable[[argparse.ArgumentParser], None]


def migrating(
    name: str,
    help: str,
    own: Options,
    runs: str,
    *,
    directory: bool = True,
    database: bool = True,
    epilog: str = MIGRATE_EPILOG,
) -> Command:
    """A command of the migration engine: the migrations DIR (unless ``directory=False``), the
    database (unless ``database=False``: the command finds its own) and its history table, the
    lock wait, --verbose, then the options ``own`` adds."""

    def arguments(parser: argparse.ArgumentParser) -> None:
        if directory:
            parser.add_argument("directory", metavar="DIR", help="the migrations directory")
        if database:
            database_url_arg(parser)
        parser.add_argument(
            "--history-schema",
            metavar="SCHEMA",
            default="kubemigrate",
            help="schema of the history table (default: %(default)s)",
        )
        parser.add_argument(
            "--lock-wait",
            metavar="SECONDS",
            type=seconds,
            default=30.0,
            help="how long to wait for another runner's lock (default: %(default)s)",
        )
        parser.add_argument(
            "-v", "--verbose", action="store_true", help="show statements, timings and lock waits"
        )
        own(parser)

    return Command(name, help, arguments, runs, epilog, needs_database=database)


def backing_up(name: str, help: str, own: Options, runs: str) -> Command:
    """A backup command: --verbose, --termination-log and --json, then the options ``own`` adds. It
    resolves ``$DATABASE_URL`` itself, so that even a missing URL lands in its JSON result."""

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-v", "--verbose", action="store_true", help="show each step")
        parser.add_argument(
            "--termination-log",
            metavar="PATH",
            type=Path,
            help="also write the result as JSON (at most 4 KiB) to PATH",
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        own(parser)

    return Command(name, help, arguments, runs, BACKUP_EPILOG, needs_database=False)


SUBCOMMANDS: tuple[Command, ...] = (
    migrating(
        "apply",
        "apply pending migrations, each in its own transaction",
        options.apply,
        "kubemigrate.cli.migrate:run_apply",
    ),
    migrating(
        "rollback",
        "revert applied migrations with their rollback SQL",
        options.rollback,
        "kubemigrate.cli.migrate:run_rollback",
    ),
    migrating(
        "status",
        "show every version: applied, pending, failed, drifted",
        options.json_flag,
        "kubemigrate.cli.migrate:run_status",
    ),
    migrating(
        "plan",
        "show what apply would do, without running anything",
        options.plan,
        "kubemigrate.cli.migrate:run_plan",
    ),
    migrating(
        "validate",
        "check for drift, order and source problems; exit non-zero on any",
        options.json_flag,
        "kubemigrate.cli.migrate:run_validate",
    ),
    migrating(
        "repair",
        "accept changed files of applied migrations; settle a stopped no-transaction run",
        options.repair,
        "kubemigrate.cli.migrate:run_repair",
    ),
    migrating(
        "baseline",
        "record an existing schema as applied up to a version",
        options.baseline,
        "kubemigrate.cli.migrate:run_baseline",
    ),
    migrating(
        "preflight",
        "check that a migration can be applied now (run by the operator's Job)",
        options.preflight,
        "kubemigrate.cli.preflight:run_preflight_command",
        directory=False,
    ),
    migrating(
        "run-set",
        "preflight, then apply (or roll back) a directory to a target version (run by the "
        "operator's MigrationSet Job)",
        options.run_set,
        "kubemigrate.cli.migrate_set:run_set",
    ),
    migrating(
        "fleet-worker",
        "run a directory on each target of a fleet wave, claimed from its ledger ConfigMap "
        "(run by the operator's fleet Jobs)",
        options.fleet_worker,
        "kubemigrate.cli.fleet_worker:run_fleet_worker",
        database=False,
        epilog=FLEET_EPILOG,
    ),
    backing_up(
        "backup",
        "take a pg_dump backup with its sha256 and row counts",
        options.backup,
        "kubemigrate.cli.backup:run_backup",
    ),
    backing_up(
        "restore",
        "restore a backup into a database, then compare row counts",
        options.restore,
        "kubemigrate.cli.backup:run_restore",
    ),
    backing_up(
        "verify-backup",
        "check a backup: sha256, readability, optionally restore",
        options.verify_backup,
        "kubemigrate.cli.backup:run_verify",
    ),
    backing_up(
        "delete-backup",
        "delete a backup: the dump, its sidecar and any partial files a killed backup left "
        "(nothing there is not an error)",
        options.delete_backup,
        "kubemigrate.cli.backup:run_delete",
    ),
    Command(
        "manifests",
        "print a directory as ConfigMaps and a MigrationSet, for kubectl apply -f -",
        options.manifests,
        "kubemigrate.cli.manifests:run_manifests",
        MANIFESTS_EPILOG,
        needs_database=False,
    ),
)
