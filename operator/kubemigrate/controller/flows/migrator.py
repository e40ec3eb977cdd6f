"""The Migration flow's one seam to the engine: the calls it makes on a database, and the
factory that opens them. The daemon uses the engine's `Migrator`; a test passes its own."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from kubemigrate.controller.flows.context import StepContext
from kubemigrate.engine import (
    AppliedRun,
    BatchProgress,
    MigrationSource,
    Migrator,
    Origin,
    RunReport,
    VersionState,
    cancel_sessions,
)
from kubemigrate.models.migration import MigrationSpec


class Migrating(Protocol):
    """What the flow asks of one database (a subset of `Migrator`, and a way to stop it)."""

    def apply(
        self, sources: Iterable[MigrationSource], *, dry_run: bool, allow_out_of_order: bool
    ) -> RunReport: ...

    def rollback(
        self, sources: Iterable[MigrationSource], *, versions: Sequence[str]
    ) -> RunReport: ...

    def status(self, sources: Iterable[MigrationSource]) -> list[VersionState]: ...

    def ensure_history(self) -> None: ...

    def last_applied(self, version: str) -> AppliedRun | None: ...

    def cancel(self) -> int:
        """Cancel the statement a call of this migrator is running (from another thread);
        how many sessions were signalled."""
        ...


MigratorFactory = Callable[[str, Mapping[str, Any], MigrationSpec, StepContext], Migrating]
"""(database URL, Migration object, its spec, the step's context) -> the engine for it."""


def application_name(obj: Mapping[str, Any]) -> str:
    """The application_name of the operator's sessions for one Migration: unique, so that its
    run can be cancelled without touching any other (63 characters at most)."""
    return f"kubemigrate-operator {obj['metadata']['uid']}"[:63]


class OperatorMigrator:
    """The engine's `Migrator` for one Migration, whose running statement can be cancelled."""

    def __init__(self, url: str, engine: Migrator, name: str) -> None:
        self._url, self._engine, self._name = url, engine, name

    def apply(
        self, sources: Iterable[MigrationSource], *, dry_run: bool, allow_out_of_order: bool
    ) -> RunReport:
        return self._engine.apply(sources, dry_run=dry_run, allow_out_of_order=allow_out_of_order)

    def rollback(self, sources: Iterable[MigrationSource], *, versions: Sequence[str]) -> RunReport:
        return self._engine.rollback(sources, versions=versions)

    def status(self, sources: Iterable[MigrationSource]) -> list[VersionState]:
        return self._engine.status(sources)

    def ensure_history(self) -> None:
        self._engine.ensure_history()

    def last_applied(self, version: str) -> AppliedRun | None:
        return self._engine.last_applied(version)

    def cancel(self) -> int:
        return cancel_sessions(self._url, self._name)

    def watch_batches(
        self, on_batch: Callable[[BatchProgress], None], paused: Callable[[], bool]
    ) -> None:
        """Report batched steps' progress to on_batch, and pause them while paused says so."""
        self._engine.on_batch, self._engine.paused = on_batch, paused


def open_migrator(
    url: str, obj: Mapping[str, Any], spec: MigrationSpec, ctx: StepContext
) -> Migrating:
    """The engine for one Migration: the operator's settings, and the Migration recorded as
    the origin of every history row it writes."""
    meta, settings = obj["metadata"], ctx.settings
    name = application_name(obj)
    engine = Migrator(
        url,
        history_schema=spec.history_schema,
        application_name=name,
        lock_wait_seconds=settings.lock_wait_seconds,
        default_lock_timeout=settings.lock_timeout_seconds,
        default_statement_timeout=settings.statement_timeout_seconds or None,
        actor=f"kubemigrate-operator@{socket.gethostname()}",
        origin=Origin(meta["name"], meta["uid"], meta["generation"]),
        on_progress=ctx.logger.debug,
    )
    return OperatorMigrator(url, engine, name)
