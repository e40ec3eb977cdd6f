"""The options each subcommand adds to those of its family (see cli.subcommands).

Each is ``(parser) -> None``, adding arguments in the order ``--help`` lists them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kubemigrate.cli.command import database_url_arg, positive_int, version

# -- the migration commands --------------------------------------------------------------------


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def none(parser: argparse.ArgumentParser) -> None:
    pass


def apply(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", metavar="VERSION", type=version, help="apply up to and including this version"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run each migration in a transaction that is rolled back",
    )
    parser.add_argument(
        "--allow-out-of-order",
        action="store_true",
        help="apply pending migrations older than the newest applied one",
    )
    json_flag(parser)


def rollback(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--target",
        metavar="VERSION",
        type=version,
        help="revert every applied version above this one (0: all)",
    )
    which.add_argument(
        "--steps",
        metavar="N",
        type=positive_int,
        help="revert the newest N applied versions, counted from where the history stands "
        "now: not resumable (a --steps 2 killed after one, run again, reverts two more), "
        "so for scripts and CI give --target instead",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run the rollback SQL in a transaction that is rolled back",
    )
    json_flag(parser)


def plan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", metavar="VERSION", type=version, help="plan up to and including this version"
    )
    parser.add_argument(
        "--allow-out-of-order",
        action="store_true",
        help="do not count older pending migrations as a problem",
    )
    json_flag(parser)


def baseline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version",
        metavar="VERSION",
        type=version,
        required=True,
        dest="baseline_version",
        help="record every migration up to this version as applied, unrun",
    )
    parser.add_argument("--description", default="baseline", help="(default: %(default)s)")


def preflight(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan",
        metavar="FILE",
        type=Path,
        required=True,
        help="the plan JSON the operator wrote (version, sqlFiles, requires, ...)",
    )
    parser.add_argument(
        "--long-transaction",
        metavar="SECONDS",
        type=float,
        default=300.0,
        help="report transactions open longer than this (default: %(default)s)",
    )
    parser.add_argument(
        "--termination-log",
        metavar="PATH",
        type=Path,
        help="also write the result as JSON here (a Job's termination message)",
    )


def run_set(parser: argparse.ArgumentParser) -> None:
    """A MigrationSet's run, with where its result goes (the Job's termination message)."""
    set_run(parser)
    parser.add_argument(
        "--termination-log",
        metavar="PATH",
        type=Path,
        help="also write the result as JSON here (a Job's termination message)",
    )
    json_flag(parser)


def fleet_worker(parser: argparse.ArgumentParser) -> None:
    """A fleet wave's worker: a set run on each target it claims from the wave's ledger."""
    set_run(parser)
    parser.add_argument(
        "--termination-log",
        metavar="PATH",
        type=Path,
        help="also write how the loop ended as JSON here (the targets' outcomes are in the ledger)",
    )
    parser.add_argument(
        "--targets-file",
        metavar="PATH",
        type=Path,
        required=True,
        help="the wave's target names, one a line, in the order to run them",
    )
    parser.add_argument(
        "--ledger", metavar="NAME", required=True, help="the wave's ledger ConfigMap"
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--secret-key",
        metavar="KEY",
        help="each target is a Secret of this name holding its database URL under KEY",
    )
    mode.add_argument(
        "--schemas-secret",
        metavar="NAME",
        help="each target is a schema of the database whose URL this Secret holds, run with "
        "its search_path and its history table in that schema",
    )
    parser.add_argument(
        "--schemas-key",
        metavar="KEY",
        default="url",
        help="the key of --schemas-secret (default: %(default)s)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NAME",
        help="where the ledger and the Secrets are (default: the pod's namespace)",
    )
    parser.add_argument(
        "--service-account-dir",
        metavar="DIR",
        type=Path,
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount"),
        help="the ServiceAccount's token, ca.crt and namespace (default: %(default)s)",
    )


def set_run(parser: argparse.ArgumentParser) -> None:
    """A set run: where to stop, how, and which resource asked (for the history)."""
    parser.add_argument(
        "--target",
        metavar="VERSION",
        type=version,
        help="apply up to this version; below the applied one, roll back to it (0: all)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="run everything in transactions rolled back"
    )
    parser.add_argument(
        "--allow-out-of-order",
        action="store_true",
        help="apply pending migrations older than the newest applied one",
    )
    parser.add_argument(
        "--no-preflight",
        dest="preflight",
        action="store_false",
        help="skip the checks before the run",
    )
    parser.add_argument(
        "--long-transaction",
        metavar="SECONDS",
        type=float,
        default=300.0,
        help="report transactions open longer than this (default: %(default)s)",
    )
    parser.add_argument(
        "--lock-timeout",
        metavar="SECONDS",
        type=float,
        default=2.0,
        help="lock_timeout of each migration that sets none (default: %(default)s)",
    )
    parser.add_argument(
        "--statement-timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="statement_timeout of each migration that sets none (default: the server's)",
    )
    parser.add_argument("--actor", metavar="NAME", help="who runs it, for the history")
    parser.add_argument("--resource-name", metavar="NAME", help="the resource that asked")
    parser.add_argument("--resource-uid", metavar="UID", help="its uid")
    parser.add_argument(
        "--resource-generation", metavar="N", type=int, help="its metadata.generation"
    )


# -- the backup commands -----------------------------------------------------------------------


FORMATS = ("custom", "plain", "directory")
"""pg_dump's formats, as ``engine.FORMATS``, which would load the backup engine to parse
arguments (a unit test keeps the two the same)."""


def location(text: str) -> Path | str:
    """A backup's place: ``s3://bucket/key`` as given (the engine parses it), else a path."""
    return text if text.startswith("s3://") else Path(text)


WHERE = "a file or directory, or s3://bucket/prefix/name (credentials from AWS_* variables)"


def _pg_restore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-restore",
        metavar="PROGRAM",
        default="pg_restore",
        help="the pg_restore to run (default: pg_restore on PATH)",
    )


def backup(parser: argparse.ArgumentParser) -> None:
    database_url_arg(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=location,
        required=True,
        help="where to write the backup (a directory for --format directory; or "
        "s3://bucket/prefix/name, uploaded in parts as pg_dump writes)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="custom", help="pg_dump format (default: %(default)s)"
    )
    parser.add_argument(
        "--jobs",
        metavar="N",
        type=positive_int,
        help="parallel pg_dump workers (directory format only)",
    )
    parser.add_argument(
        "--compress",
        metavar="METHOD",
        help="pg_dump --compress: a gzip level 0-9, or (pg_dump 16+) gzip:N, lz4[:N], "
        "zstd[:N], none (default: pg_dump's)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check the finished backup (sha256, pg_restore --list)",
    )
    parser.add_argument(
        "--scratch-url",
        metavar="URL",
        help="also restore it into a scratch database created on this server "
        "and compare row counts (implies --verify; needs CREATEDB)",
    )
    parser.add_argument(
        "--test-restore",
        action="store_true",
        help="like --scratch-url, on the server of --database-url (what the "
        "operator's Jobs use: the URL stays in $DATABASE_URL)",
    )
    parser.add_argument(
        "--row-counts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count every table's rows in the dump's snapshot and record them "
        "for restores to compare with (default: when verifying; it costs "
        "a scan of every table alongside the dump)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing backup at --output (only once the new one is complete)",
    )
    parser.add_argument(
        "--pg-dump",
        metavar="PROGRAM",
        default="pg_dump",
        help="the pg_dump to run (default: pg_dump on PATH)",
    )


def restore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", type=location, help=f"the backup to restore: {WHERE}"
    )
    database_url_arg(parser)
    parser.add_argument(
        "--clean",
        action="store_true",
        help="drop the backed-up objects first; without it a database that is not empty is refused",
    )
    parser.add_argument(
        "--no-owner",
        action="store_true",
        help="do not restore object ownership (restoring as another role)",
    )
    parser.add_argument(
        "--jobs",
        metavar="N",
        type=positive_int,
        help="parallel pg_restore workers (directory backups, or custom files on disk); not "
        "one transaction: a failure leaves the target partly restored",
    )
    _pg_restore(parser)


def verify_backup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", type=location, help=f"the backup to check: {WHERE}")
    parser.add_argument(
        "--scratch-url",
        metavar="URL",
        help="also restore it into a scratch database created on this server "
        "and compare row counts (needs CREATEDB)",
    )
    _pg_restore(parser)


def delete_backup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", type=location, help=f"the backup to delete: {WHERE}"
    )


# -- manifests ---------------------------------------------------------------------------------


def manifests(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="the migrations directory")
    parser.add_argument(
        "--name", required=True, help="the MigrationSet's name (ConfigMaps are named after it)"
    )
    parser.add_argument(
        "--secret", required=True, help="the Secret holding the database URL, in its namespace"
    )
    parser.add_argument(
        "--secret-key", default="url", help="the Secret's key for the URL (default: %(default)s)"
    )
    parser.add_argument("-n", "--namespace", help="set metadata.namespace on every object")
    parser.add_argument(
        "--target-version",
        metavar="VERSION",
        type=version,
        help="spec.targetVersion (default: none, meaning the newest in the directory)",
    )
    parser.add_argument(
        "--stable-names",
        action="store_true",
        help="name ConfigMaps without a content hash (then changing a file does not change "
        "the MigrationSet's spec)",
    )
    parser.add_argument(
        "--max-bytes",
        metavar="N",
        type=positive_int,
        default=1_000_000,
        help="bytes of files per ConfigMap before splitting (default: %(default)s; "
        "the API refuses ConfigMaps over 1 MiB)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="say how many ConfigMaps, on stderr"
    )


def repair(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--completed",
        metavar="VERSION",
        type=version,
        action="append",
        default=[],
        help="a no-transaction migration whose run stopped in a statement the engine cannot "
        "settle: record that statement as done, because you checked that it completed "
        "(repeatable). Without it, such a statement is recorded as not done, and the next "
        "run runs it again",
    )
