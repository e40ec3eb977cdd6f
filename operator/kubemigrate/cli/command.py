"""What every CLI subcommand is made of, and the exit statuses they share (see kubemigrate.cli)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from kubemigrate.cli.output import Output
from kubemigrate.engine.migrate.versions import validate_version

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_DRIFT = 4
EXIT_LOCK = 5
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, extra arguments, and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Output], int]
    needs_database: bool = True
    takes_directory: bool = True


# -- argument types shared by every subcommand -------------------------------------------------


def seconds(text: str) -> float:
    """A non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be zero or more")
    return value


def positive_int(text: str) -> int:
    """A whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def version(text: str) -> str:
    """A migration version, as the engine orders them."""
    try:
        return validate_version(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def database_url_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", metavar="URL", default=None,
                        help="libpq URL of the database (default: $DATABASE_URL)")
