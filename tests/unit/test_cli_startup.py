"""The CLI's start-up: what ``import kubemigrate.cli`` loads, since every Job and CI step pays it.

The database driver, the SQL parser and the backup engine are loaded by the commands that use
them, not by every command (``kubemigrate apply`` with nothing to do is mostly start-up): the
parser is built from declarations that name each subcommand's code without importing it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubemigrate import engine
from kubemigrate.cli import options, subcommands
from kubemigrate.cli.command import Command

LOADED_LATER = (
    "psycopg",
    "pglast",
    "kubemigrate.engine.migrate.migrator",
    "kubemigrate.engine.migrate.sources",
    "kubemigrate.engine.backup.dump",
    "kubemigrate.engine.backup.restore",
    "kubemigrate.engine.backup.verify",
    "kubemigrate.engine.backup.dumpfile",
    "kubemigrate.engine.migrate.preflight",
    "kubemigrate.cli.migrate",
    "kubemigrate.cli.preflight",
    "kubemigrate.cli.backup",
    "kubemigrate.cli.results",
    "kubemigrate.jobresult",
)


def test_importing_the_cli_loads_no_driver_parser_or_backup_engine() -> None:
    code = (
        "import sys, kubemigrate.cli; kubemigrate.cli.build_parser(); "
        "print('\\n'.join(sys.modules))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert "kubemigrate.cli" in loaded
    assert (
        sorted(m for m in loaded if m.split(".")[0] in ("psycopg", "pglast") or m in LOADED_LATER)
        == []
    )


@pytest.mark.parametrize("command", subcommands.SUBCOMMANDS, ids=lambda c: c.name)
def test_every_subcommand_names_code_that_exists(command: Command) -> None:
    assert callable(command.load())


def test_subcommand_names_are_unique() -> None:
    names = [c.name for c in subcommands.SUBCOMMANDS]
    assert len(names) == len(set(names))


def test_backup_formats_are_the_dump_files() -> None:
    assert options.FORMATS == engine.FORMATS
