"""The Migration flow's one seam to the engine: the calls it makes on a database, and the
factory that opens them. The daemon uses the engine's `Migrator`; a test passes its own."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from kubemigrate.controller.flows.context import StepContext
from kubemigrate.engine import (
    AppliedRun,
    MigrationSource,
    Migrator,
    Origin,
    RunReport,
    VersionState,
)
from kubemigrate.models.migration import MigrationSpec


class Migrating(Protocol):
    """What the flow asks of one database (a subset of `Migrator`)."""

    def apply(
        self, sources: Iterable[MigrationSource], *, dry_run: bool, allow_out_of_order: bool
    ) -> RunReport: ...

    def rollback(
        self, sources: Iterable[MigrationSource], *, versions: Sequence[str]
    ) -> RunReport: ...

    def status(self, sources: Iterable[MigrationSource]) -> list[VersionState]: ...

    def ensure_history(self) -> None: ...

    def last_applied(self, version: str) -> AppliedRun | None: ...


MigratorFactory = Callable[[str, Mapping[str, Any], MigrationSpec, StepContext], Migrating]
"""(database URL, Migration object, its spec, the step's context) -> the engine for it."""


def open_migrator(
    url: str, obj: Mapping[str, Any], spec: MigrationSpec, ctx: StepContext
) -> Migrating:
    """The engine for one Migration: the operator's settings, and the Migration recorded as
    the origin of every history row it writes."""
    meta, settings = obj["metadata"], ctx.settings
    return Migrator(
        url,
        history_schema=spec.history_schema,
        application_name="kubemigrate-operator",
        lock_wait_seconds=settings.lock_wait_seconds,
        default_lock_timeout=settings.lock_timeout_seconds,
        default_statement_timeout=settings.statement_timeout_seconds or None,
        actor=f"kubemigrate-operator@{socket.gethostname()}",
        origin=Origin(meta["name"], meta["uid"], meta["generation"]),
        on_progress=ctx.logger.debug,
    )
