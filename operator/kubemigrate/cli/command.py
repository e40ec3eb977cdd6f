"""What a subcommand is, the exit statuses they share, and the argument types they parse.

A subcommand is declared once, as a ``Command``: what the parser shows, and the dotted name of
the function that runs it. That function's module is imported only when the subcommand runs, so
declaring all of them costs ``kubemigrate --help`` nothing.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from kubemigrate.cli.output import Output
from kubemigrate.engine import validate_version

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_DRIFT = 4
EXIT_LOCK = 5
EXIT_INTERRUPTED = 130

Runner = Callable[[argparse.Namespace, Output], int]
"""What runs a subcommand: its parsed arguments and where to write, to an exit status."""


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, help and arguments, and the function that runs it.

    ``runs`` is ``"package.module:function"``, a ``Runner`` imported by ``load()`` when the
    subcommand runs. ``needs_database``: the database URL is taken from ``$DATABASE_URL`` when
    not given, and the command refused without one; commands that report even that in their
    own result (the backup commands, for their Jobs) resolve it themselves.
    """

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    runs: str
    epilog: str
    needs_database: bool = True

    def load(self) -> Runner:
        """The function that runs this subcommand, importing its module now."""
        module, _, function = self.runs.partition(":")
        runner: Runner = getattr(importlib.import_module(module), function)
        return runner


# -- argument types ----------------------------------------------------------------------------


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
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=None,
        help="libpq URL of the database (default: $DATABASE_URL)",
    )
