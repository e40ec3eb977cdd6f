"""A Migration's backup before applying, and its rollback by restoring that backup.

With ``spec.backup`` the migration, once preflight passed and it is next in its database's queue,
creates a DatabaseBackup ``<migration>-pre-g<generation>`` (owned by the Migration, so it goes
with it), shows phase BackingUp with ``status.backupRef``, and applies only once the backup
Succeeded and is verified. The history table is created first if it does not exist, so the
backup holds it and a restore brings the history back to its pre-migration state too.

With ``rollbackStrategy: restore``, ``rollback: true`` creates a DatabaseRestore of that backup
with ``clean: true`` and waits for it. Everything written to the backed-up objects after the
backup is lost; status.message says so, with the backup's time.

These steps end the way every Migration step does, through the flow's `MigrationStatusWriter`;
the manifests are built in `build.restore_point`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubemigrate.controller.build.restore_point import (
    backup_manifest,
    backup_name,
    lost_writes_note,
    restore_manifest,
    restore_name,
)
from kubemigrate.controller.build.status import rfc3339, status_of
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.flows.migration_status import MigrationStatusWriter
from kubemigrate.controller.flows.migrator import Migrating
from kubemigrate.engine import EngineError
from kubemigrate.models.backup import BackupPhase, DatabaseBackupStatus
from kubemigrate.models.common import LocalObjectReference
from kubemigrate.models.migration import MigrationPhase, MigrationSpec, MigrationStatus
from kubemigrate.models.restore import DatabaseRestoreStatus, RestorePhase

BACKUPS, RESTORES = "databasebackups", "databaserestores"
POLL = 2.0


async def backup_first(
    writer: MigrationStatusWriter,
    obj: dict[str, Any],
    spec: MigrationSpec,
    migrator: Migrating,
    ctx: StepContext,
) -> float | None:
    """None once the pre-migration backup is verified; else the delay before looking again."""
    meta, current = obj["metadata"], writer.current(obj)
    ns, name = meta["namespace"], backup_name(obj)
    if spec.backup is None or spec.backup.storage is None:
        return await writer.failed(
            obj,
            "NoBackupStorage",
            "spec.backup.storage is not set (there is no operator-wide "
            "default yet): set spec.backup.storage (persistentVolumeClaim or objectStore)",
            ctx,
        )
    backup = await ctx.api.get_custom(BACKUPS, ns, name)
    if backup is None:
        try:
            await asyncio.to_thread(migrator.ensure_history)
        except EngineError as exc:
            return await writer.transient(obj, "DatabaseUnavailable", str(exc), ctx)
        backup = await ctx.api.create_custom(BACKUPS, backup_manifest(obj, spec))
        ctx.emit(
            "Normal", "BackingUp", f"Taking backup {name} before applying version {spec.version}"
        )
    found = status_of(DatabaseBackupStatus, backup)
    phase = found.phase or BackupPhase.PENDING
    ref = LocalObjectReference(name=name)
    if phase is BackupPhase.FAILED:
        return await writer.failed(
            obj,
            "BackupFailed",
            f"backup {name} failed, so version {spec.version} was not "
            f"applied: {found.message or ''}",
            ctx,
            MigrationStatus(backup_ref=ref),
        )
    if phase is BackupPhase.SUCCEEDED and found.verified:
        return None
    message = f"taking backup {name} before applying version {spec.version} ({phase})"
    if (current.phase, current.message) != (MigrationPhase.BACKING_UP, message):
        await writer.write(
            obj,
            ctx,
            MigrationStatus(
                phase=MigrationPhase.BACKING_UP, reason="BackingUp", message=message, backup_ref=ref
            ),
        )
    return POLL


async def follow_restore(
    writer: MigrationStatusWriter, obj: dict[str, Any], ctx: StepContext
) -> float | None:
    """Follow this rollback's DatabaseRestore; None when none was started yet."""
    meta = obj["metadata"]
    restore = await ctx.api.get_custom(RESTORES, meta["namespace"], restore_name(obj))
    if restore is None:
        return None
    found = status_of(DatabaseRestoreStatus, restore)
    backup = restore["spec"]["backupRef"]["name"]
    if found.phase is RestorePhase.FAILED:
        return await writer.failed(
            obj, "RestoreFailed", f"restoring backup {backup} failed: {found.message or ''}", ctx
        )
    if found.phase is not RestorePhase.SUCCEEDED:
        return POLL
    taken = await _taken_at(ctx, meta["namespace"], backup)
    note = lost_writes_note(backup, taken)
    await writer.write(
        obj,
        ctx,
        MigrationStatus(
            phase=MigrationPhase.ROLLED_BACK,
            reason="RestoredBackup",
            message=note,
            checksum=None,
            rollback_available=False,
            last_error=None,
            started_at=found.started_at,
            completed_at=found.completed_at,
            duration_seconds=found.duration_seconds,
        ),
    )
    ctx.emit("Warning", "RestoredBackup", note)
    return writer.settled(obj, ctx, MigrationPhase.ROLLED_BACK)


async def start_restore(
    writer: MigrationStatusWriter, obj: dict[str, Any], spec: MigrationSpec, ctx: StepContext
) -> float:
    """Roll back an applied migration by restoring its pre-migration backup."""
    meta, current = obj["metadata"], writer.current(obj)
    backup = current.backup_ref.name if current.backup_ref is not None else None
    found = await ctx.api.get_custom(BACKUPS, meta["namespace"], backup) if backup else None
    usable = (
        found is not None and status_of(DatabaseBackupStatus, found).phase is BackupPhase.SUCCEEDED
    )
    if not backup or not usable:
        return await writer.failed(
            obj,
            "NoBackup",
            f"version {spec.version} has no usable pre-migration backup "
            f"({backup or 'none recorded in status.backupRef'}); it cannot be rolled back by "
            "restore",
            ctx,
        )
    await ctx.api.create_custom(RESTORES, restore_manifest(obj, spec, backup))
    taken = await _taken_at(ctx, meta["namespace"], backup)
    message = (
        f"rolling back version {spec.version} by restoring backup {backup} taken at "
        f"{taken}: writes after {taken} will be lost"
    )
    await writer.write(
        obj,
        ctx,
        MigrationStatus(
            phase=MigrationPhase.ROLLING_BACK, reason="RestoringBackup", message=message
        ),
    )
    ctx.emit("Warning", "RestoringBackup", message)
    return POLL


async def _taken_at(ctx: StepContext, namespace: str, backup: str) -> str:
    found = await ctx.api.get_custom(BACKUPS, namespace, backup)
    status = status_of(DatabaseBackupStatus, found)
    taken = status.started_at or status.completed_at
    return rfc3339(taken) if taken is not None else "an unknown time"
