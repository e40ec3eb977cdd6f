"""The CLI's start-up: what ``import kubemigrate.cli`` loads, since every Job and CI step pays it.

The database driver, the SQL parser and the backup engine are loaded by the commands that use
them, not by every command (``kubemigrate apply`` with nothing to do is mostly start-up).
"""

from __future__ import annotations

import subprocess
import sys

from kubemigrate.cli import backup as cli_backup
from kubemigrate.engine.backup import dumpfile

LOADED_LATER = ("psycopg", "pglast", "kubemigrate.engine.migrate.migrator",
                "kubemigrate.engine.backup.dump",
                "kubemigrate.engine.backup.restore", "kubemigrate.engine.backup.verify",
                "kubemigrate.engine.backup.dumpfile", "kubemigrate.engine.migrate.preflight",
                "kubemigrate.termination")


def test_importing_the_cli_loads_no_driver_parser_or_backup_engine() -> None:
    code = ("import sys, kubemigrate.cli; kubemigrate.cli.build_parser(); "
            "print('\\n'.join(sys.modules))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    assert "kubemigrate.cli" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in ("psycopg", "pglast")
                  or m in LOADED_LATER) == []


def test_backup_formats_are_the_dump_files() -> None:
    assert cli_backup.FORMATS == dumpfile.FORMATS
