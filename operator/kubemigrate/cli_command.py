"""What every CLI subcommand is made of, and the exit statuses they share (see cli.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from kubemigrate.cli_output import Output

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
