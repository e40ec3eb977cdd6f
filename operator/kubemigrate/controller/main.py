"""The kopf entry point (`kopf run -m kubemigrate.controller.main`): handlers only.

Each handler is a guard and one delegating call: into the shared `Runtime` for events and
deletions, into `daemons` for the per-object loops. The decisions live in `flows`, `ordering`
and the pure builders of `build`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kubemigrate.controller import daemons
from kubemigrate.controller.diffbase import DigestDiffBaseStorage
from kubemigrate.controller.kube import login as login_as
from kubemigrate.controller.kube.api import KubeApi, make_client
from kubemigrate.controller.ordering.backups import (
    BackupIndex,
    BackupKey,
    BackupPeer,
    backup_peer_of,
)
from kubemigrate.controller.ordering.migrations import DatabaseKey, Peer, PeerIndex, peer_of
from kubemigrate.controller.ordering.sets import SetIndex, SetPeer, set_peer_of
from kubemigrate.controller.runtime import Runtime
from kubemigrate.models import GROUP, VERSION
from kubemigrate.settings import Settings

MIGRATIONS = (GROUP, VERSION, "migrations")
BACKUPS = (GROUP, VERSION, "databasebackups")
RESTORES = (GROUP, VERSION, "databaserestores")
SCHEDULES = (GROUP, VERSION, "databasebackupschedules")
MIGRATION_SETS = (GROUP, VERSION, "migrationsets")
OURS = {"app.kubernetes.io/managed-by": "kubemigrate"}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    """kopf's bookkeeping under kubemigrate.dev (the CRD schema prunes status.kopf; the diff
    base is a digest, see `diffbase`), then the shared runtime and the metrics endpoint."""
    config = Settings.from_env()
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    if not config.verbose:  # one line per watch event otherwise
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    settings.scanning.disabled = config.namespaced
    memo.runtime = Runtime(config, KubeApi(make_client()))
    memo.runtime.metrics.serve(config.metrics_port)
    logger.info("kubemigrate operator started")


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return login_as.login(**kwargs)


# -- Migration -------------------------------------------------------------------------------


@kopf.index(*MIGRATIONS)
def migrations_by_database(body: kopf.Body, **_: Any) -> dict[DatabaseKey, Peer]:
    """Every Migration by its database: the queue the ordering rules read."""
    peer = peer_of(body)
    return {peer.database: peer}


@kopf.on.event(*MIGRATIONS)
def migration_changed(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    index: PeerIndex = kwargs["migrations_by_database"]
    memo.runtime.on_migration_event(body, index)


@kopf.daemon(*MIGRATIONS, cancellation_timeout=30.0)
async def migration(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: Any, logger: kopf.Logger, **kwargs: Any
) -> None:
    index: PeerIndex = kwargs["migrations_by_database"]
    sets: SetIndex = kwargs["sets_by_database"]
    await daemons.run_migration(memo.runtime, body, stopped, index, logger, sets=sets)


@kopf.on.delete(*MIGRATIONS)
async def migration_deleted(body: kopf.Body, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    """The database and its history stay as they are; a run in flight is cancelled and rolled
    back, and our Jobs go."""
    await memo.runtime.migration_deleted(body, logger)


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
def job_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.runtime.on_job_event(body)


# -- DatabaseBackup and DatabaseRestore ------------------------------------------------------


@kopf.index(*BACKUPS)
def backups_by_database(body: kopf.Body, **_: Any) -> dict[BackupKey, BackupPeer]:
    """Every DatabaseBackup by its database: one backup at a time per database."""
    peer = backup_peer_of(body)
    return {peer.database: peer}


@kopf.on.event(*BACKUPS)
def backup_changed(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    index: BackupIndex = kwargs["backups_by_database"]
    memo.runtime.on_backup_event(body, index)


@kopf.daemon(*BACKUPS, cancellation_timeout=30.0)
async def backup(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: Any, logger: kopf.Logger, **kwargs: Any
) -> None:
    index: BackupIndex = kwargs["backups_by_database"]
    await daemons.run_backup(memo.runtime, body, stopped, index, logger)


@kopf.on.delete(*BACKUPS)
async def backup_deleted(body: kopf.Body, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    """A backup's file goes with it (pruning, TTL or kubectl delete)."""
    await memo.runtime.backup_deleted(body, logger)


@kopf.on.event(*RESTORES)
def restore_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.runtime.on_restore_event(body)


@kopf.daemon(*RESTORES, cancellation_timeout=30.0)
async def restore(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    await daemons.run_restore(memo.runtime, body, stopped, logger)


# -- DatabaseBackupSchedule ------------------------------------------------------------------


@kopf.on.event(*SCHEDULES)
def schedule_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    """A new generation (suspend, a new cron expression) wakes the schedule's daemon; its own
    status writes do not."""
    meta, status = body["metadata"], body.get("status") or {}
    if meta.get("generation") != status.get("observedGeneration"):
        memo.runtime.wakeups.wake(meta["uid"])


@kopf.daemon(*SCHEDULES, cancellation_timeout=30.0)
async def backup_schedule(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """Sleeps until the next fire time; the backups it creates are owned by the schedule, so
    the garbage collector deletes them (and their deletion, their files) with it."""
    await daemons.run_schedule(memo.runtime, body, stopped, logger)


# -- MigrationSet ----------------------------------------------------------------------------


@kopf.index(*MIGRATION_SETS)
def sets_by_database(body: kopf.Body, **_: Any) -> dict[DatabaseKey, SetPeer]:
    """Every MigrationSet by its database, with its versions: a Migration of one is refused."""
    peer = set_peer_of(body)
    return {peer.database: peer}


@kopf.on.event(*MIGRATION_SETS)
def migration_set_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.runtime.on_set_event(body)


@kopf.daemon(*MIGRATION_SETS, cancellation_timeout=30.0)
async def migration_set(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: Any, logger: kopf.Logger, **kwargs: Any
) -> None:
    index: PeerIndex = kwargs["migrations_by_database"]
    await daemons.run_migration_set(memo.runtime, body, stopped, index, logger)
