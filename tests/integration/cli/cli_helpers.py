"""Helpers for driving the real ``kubemigrate`` command as a subprocess against PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

SCRIPT = Path(sys.executable).with_name("kubemigrate")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "kubemigrate"]


@dataclass(frozen=True)
class Result:
    """How a run of the command ended."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: ours without DATABASE_URL, plus extra."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(extra or {})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """Run ``kubemigrate ARGS`` to completion."""
    done = subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``kubemigrate ARGS`` without waiting for it."""
    return subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
    )


def query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query, on a connection of its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def tables(url: str) -> set[str]:
    """Tables in the public schema."""
    return {r[0] for r in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


class Migrations:
    """A migrations directory the test writes files into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, sql: str) -> Path:
        file = self.path / name
        file.write_text(sql, encoding="utf-8")
        return file

    def __str__(self) -> str:
        return str(self.path)


class Kubemigrate:
    """``kubemigrate COMMAND DIR --database-url URL ...`` for one test's database."""

    def __init__(self, url: str, migrations: Migrations) -> None:
        self.url = url
        self.migrations = migrations

    def __call__(self, command: str, *args: str, timeout: float = 120) -> Result:
        return run_cli(
            command, str(self.migrations), "--database-url", self.url, *args, timeout=timeout
        )

    def start(self, command: str, *args: str) -> subprocess.Popen[str]:
        return start_cli(command, str(self.migrations), "--database-url", self.url, *args)
