"""A Migration's backup before applying, and its rollback by restoring that backup.

With ``spec.backup`` the migration, once preflight passed and it is next in its database's queue,
creates a DatabaseBackup ``<migration>-pre-g<generation>`` (owned by the Migration, so it goes
with it), shows phase BackingUp with ``status.backupRef``, and applies only once the backup
Succeeded and is verified. The history table is created first if it does not exist, so the
backup holds it and a restore brings the history back to its pre-migration state too.

With ``rollbackStrategy: restore``, ``rollback: true`` creates a DatabaseRestore of that backup
with ``clean: true`` and waits for it. Everything written to the backed-up objects after the
backup is lost; status.message says so, with the backup's time.

The functions take the MigrationFlow (`Hooks`) and use its status writers, so the flow keeps
one way of writing status and this module only decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from kubemigrate.controller.build import status
from kubemigrate.controller.build.jobs import API_VERSION, Owner, job_name, owner_reference
from kubemigrate.engine.errors import EngineError
from kubemigrate.engine.migrate.history import History
from kubemigrate.engine.migrate.locking import AdvisoryLock, lock_key
from kubemigrate.engine.pg.session import Session
from kubemigrate.models.migration import MigrationSpec, RollbackStrategy

if TYPE_CHECKING:
    from kubemigrate.controller.flows.migration import Context

BACKUPS, RESTORES = "databasebackups", "databaserestores"
POLL = 2.0


class Hooks(Protocol):
    """The MigrationFlow methods used here."""

    async def _write(self, obj: dict[str, Any], ctx: Context, patch: dict[str, Any]) -> None: ...

    async def _failed(self, obj: dict[str, Any], reason: str, message: str, ctx: Context,
                      fields: dict[str, Any] | None) -> float: ...

    async def _transient(self, obj: dict[str, Any], reason: str, message: str,
                         ctx: Context) -> float: ...

    def _settled(self, obj: dict[str, Any], ctx: Context, phase: str) -> float: ...


# -- pure builders ---------------------------------------------------------------------------


def _owner(obj: Mapping[str, Any]) -> Owner:
    meta = obj["metadata"]
    return Owner("Migration", meta["name"], meta["namespace"], meta["uid"],
                 int(meta.get("generation", 1)))


def backup_name(obj: Mapping[str, Any]) -> str:
    """``<migration>-pre-g<generation>``: one backup per applied generation."""
    return job_name(_owner(obj), "pre")


def restore_name(obj: Mapping[str, Any]) -> str:
    """``<migration>-restore-g<generation>``: one restore per rollback."""
    return job_name(_owner(obj), "restore")


def _child(obj: Mapping[str, Any], kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    owner = _owner(obj)
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": name, "namespace": owner.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "kubemigrate",
                                    "kubemigrate.dev/migration": owner.name[:63]},
                         "ownerReferences": [owner_reference(owner)]},
            "spec": spec}


def backup_manifest(obj: Mapping[str, Any], spec: MigrationSpec) -> dict[str, Any]:
    """The pre-migration DatabaseBackup (spec.backup.storage must be set)."""
    assert spec.backup is not None and spec.backup.storage is not None
    return _child(obj, "DatabaseBackup", backup_name(obj), {
        "database": spec.database.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "storage": spec.backup.storage.model_dump(by_alias=True, exclude_none=True,
                                                  mode="json")})


def restore_manifest(obj: Mapping[str, Any], spec: MigrationSpec, backup: str) -> dict[str, Any]:
    """A clean restore of the pre-migration backup into the migration's database."""
    return _child(obj, "DatabaseRestore", restore_name(obj), {
        "backupRef": {"name": backup}, "clean": True,
        "database": spec.database.model_dump(by_alias=True, exclude_none=True, mode="json")})


def rollback_available(spec: MigrationSpec, has_down_sql: bool,
                       raw_status: Mapping[str, Any]) -> bool:
    """rollbackSql for strategy sql; a recorded pre-migration backup for strategy restore."""
    if spec.rollback_strategy is RollbackStrategy.RESTORE:
        return bool((raw_status.get("backupRef") or {}).get("name"))
    return has_down_sql


def lost_writes_note(backup: str, taken_at: str) -> str:
    return (f"restored backup {backup} taken at {taken_at}; writes after {taken_at} are lost "
            "(the migration history is back to its state at that time too)")


# -- the backup before applying ----------------------------------------------------------------


def ensure_history(url: str, schema: str, lock_wait: float) -> None:
    """Create the history table if missing, under the migration lock, so the backup has it."""
    with Session.connect(url, application_name="kubemigrate-operator") as session:
        lock = AdvisoryLock(session, lock_key(schema), wait_seconds=lock_wait)
        lock.acquire()
        try:
            History(session, schema).ensure()
        finally:
            lock.release()


async def backup_first(flow: Hooks, obj: dict[str, Any], spec: MigrationSpec, url: str,
                       ctx: Context) -> float | None:
    """None once the pre-migration backup is verified; else the delay before looking again."""
    meta, raw = obj["metadata"], obj.get("status") or {}
    ns, name = meta["namespace"], backup_name(obj)
    if spec.backup is None or spec.backup.storage is None:
        return await flow._failed(
            obj, "NoBackupStorage", "spec.backup.storage is not set (there is no operator-wide "
            "default yet): set spec.backup.storage.persistentVolumeClaim", ctx, None)
    backup = await ctx.api.get_custom(BACKUPS, ns, name)
    if backup is None:
        try:
            await asyncio.to_thread(ensure_history, url, spec.history_schema,
                                    ctx.settings.lock_wait_seconds)
        except EngineError as exc:
            return await flow._transient(obj, "DatabaseUnavailable", str(exc), ctx)
        backup = await ctx.api.create_custom(BACKUPS, backup_manifest(obj, spec))
        ctx.emit("Normal", "BackingUp",
                 f"Taking backup {name} before applying version {spec.version}")
    bstatus = backup.get("status") or {}
    bphase = bstatus.get("phase") or "Pending"
    if bphase == "Failed":
        return await flow._failed(
            obj, "BackupFailed", f"backup {name} failed, so version {spec.version} was not "
            f"applied: {bstatus.get('message', '')}", ctx, {"backupRef": {"name": name}})
    if bphase == "Succeeded" and bstatus.get("verified"):
        return None
    message = f"taking backup {name} before applying version {spec.version} ({bphase})"
    if (raw.get("phase"), raw.get("message")) != ("BackingUp", message):
        await flow._write(obj, ctx, status.phase("BackingUp", "BackingUp", message,
                                                 meta["generation"], raw,
                                                 backupRef={"name": name}))
    return POLL


# -- the rollback by restore ---------------------------------------------------------------------


async def follow_restore(flow: Hooks, obj: dict[str, Any], ctx: Context) -> float | None:
    """Follow this rollback's DatabaseRestore; None when none was started yet."""
    meta, raw = obj["metadata"], obj.get("status") or {}
    restore = await ctx.api.get_custom(RESTORES, meta["namespace"], restore_name(obj))
    if restore is None:
        return None
    rstatus = restore.get("status") or {}
    backup = restore["spec"]["backupRef"]["name"]
    if rstatus.get("phase") == "Failed":
        return await flow._failed(obj, "RestoreFailed", f"restoring backup {backup} failed: "
                                  f"{rstatus.get('message', '')}", ctx, None)
    if rstatus.get("phase") != "Succeeded":
        return POLL
    taken = await _taken_at(ctx, meta["namespace"], backup)
    note = lost_writes_note(backup, taken)
    await flow._write(obj, ctx, status.phase(
        "RolledBack", "RestoredBackup", note, meta["generation"], raw, checksum=None,
        rollbackAvailable=False, lastError=None, startedAt=rstatus.get("startedAt"),
        completedAt=rstatus.get("completedAt"), durationSeconds=rstatus.get("durationSeconds")))
    ctx.emit("Warning", "RestoredBackup", note)
    return flow._settled(obj, ctx, "RolledBack")


async def start_restore(flow: Hooks, obj: dict[str, Any], spec: MigrationSpec,
                        ctx: Context) -> float:
    """Roll back an applied migration by restoring its pre-migration backup."""
    meta, raw = obj["metadata"], obj.get("status") or {}
    backup = (raw.get("backupRef") or {}).get("name")
    found = await ctx.api.get_custom(BACKUPS, meta["namespace"], backup) if backup else None
    if not backup or found is None or (found.get("status") or {}).get("phase") != "Succeeded":
        return await flow._failed(
            obj, "NoBackup", f"version {spec.version} has no usable pre-migration backup "
            f"({backup or 'none recorded in status.backupRef'}); it cannot be rolled back by "
            "restore", ctx, None)
    await ctx.api.create_custom(RESTORES, restore_manifest(obj, spec, backup))
    taken = await _taken_at(ctx, meta["namespace"], backup)
    message = (f"rolling back version {spec.version} by restoring backup {backup} taken at "
               f"{taken}: writes after {taken} will be lost")
    await flow._write(obj, ctx, status.phase("RollingBack", "RestoringBackup", message,
                                             meta["generation"], raw))
    ctx.emit("Warning", "RestoringBackup", message)
    return POLL


async def _taken_at(ctx: Context, namespace: str, backup: str) -> str:
    found = await ctx.api.get_custom(BACKUPS, namespace, backup)
    bstatus = (found or {}).get("status") or {}
    return str(bstatus.get("startedAt") or bstatus.get("completedAt") or "an unknown time")
