"""The daemons of the four kinds: one loop that steps an object's flow, sleeps until woken or
due, and repeats until kopf stops it. An exception in a step (a bug, an API hiccup) is logged
and retried after a backoff; it never ends the daemon."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import kopf

from kubemigrate.controller.flows.backup import BackupFlow
from kubemigrate.controller.flows.context import Backoff
from kubemigrate.controller.flows.migration import MigrationFlow
from kubemigrate.controller.flows.migration_set import MigrationSetFlow
from kubemigrate.controller.flows.restore import RestoreFlow
from kubemigrate.controller.flows.schedule import ScheduleFlow
from kubemigrate.controller.ordering.backups import BackupIndex
from kubemigrate.controller.ordering.migrations import PeerIndex
from kubemigrate.controller.ordering.sets import SetIndex
from kubemigrate.controller.runtime import Runtime


async def run_migration(
    runtime: Runtime,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    index: PeerIndex,
    logger: kopf.Logger,
    *,
    sets: SetIndex | None = None,
) -> None:
    """One Migration's daemon; its flow's backoff also paces retries after an exception."""
    flow = MigrationFlow(Backoff.of(runtime.settings), index, sets=sets)
    ctx = runtime.context(body, logger)
    await loop(
        runtime, body, stopped, logger, step=lambda: flow.step(body, ctx), backoff=flow.backoff
    )


async def run_backup(
    runtime: Runtime,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    index: BackupIndex,
    logger: kopf.Logger,
) -> None:
    """One DatabaseBackup's daemon."""
    flow = BackupFlow(Backoff.of(runtime.settings), index)
    ctx = runtime.context(body, logger)
    await loop(
        runtime,
        body,
        stopped,
        logger,
        step=lambda: flow.step(body, ctx),
        backoff=Backoff.of(runtime.settings),
    )


async def run_restore(
    runtime: Runtime, body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger
) -> None:
    """One DatabaseRestore's daemon."""
    flow = RestoreFlow(Backoff.of(runtime.settings))
    ctx = runtime.context(body, logger)
    await loop(
        runtime,
        body,
        stopped,
        logger,
        step=lambda: flow.step(body, ctx),
        backoff=Backoff.of(runtime.settings),
    )


async def run_schedule(
    runtime: Runtime, body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger
) -> None:
    """One DatabaseBackupSchedule's daemon: it sleeps until the next fire time, or until the
    schedule changes or one of its backups does (their events wake their owner)."""
    flow = ScheduleFlow(Backoff.of(runtime.settings))
    ctx = runtime.context(body, logger)
    try:
        await loop(
            runtime,
            body,
            stopped,
            logger,
            step=lambda: flow.step(body, ctx),
            backoff=Backoff.of(runtime.settings),
        )
    finally:  # deleted (or the operator stops): no next run to alert on
        meta = body["metadata"]
        runtime.metrics.forget_schedule(meta["namespace"], meta["name"])


async def run_migration_set(
    runtime: Runtime,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    index: PeerIndex,
    logger: kopf.Logger,
) -> None:
    """One MigrationSet's daemon; index is the Migrations', to refuse a version in both."""
    flow = MigrationSetFlow(Backoff.of(runtime.settings), index)
    ctx = runtime.context(body, logger)
    await loop(
        runtime, body, stopped, logger, step=lambda: flow.step(body, ctx), backoff=flow.backoff
    )


async def loop(
    runtime: Runtime,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    logger: kopf.Logger,
    *,
    step: Callable[[], Awaitable[float]],
    backoff: Backoff,
) -> None:
    """Step, sleep until woken or due, repeat until stopped."""
    uid = body["metadata"]["uid"]
    what = f"{body.get('kind', 'object')} {body['metadata'].get('name', '')}".strip()
    try:
        while not stopped:
            try:
                delay = float(await step())
            except Exception:  # a bug or an API hiccup: log, back off, try again
                logger.exception("reconciling %s failed; retrying", what)
                delay = backoff.next()
            await runtime.wakeups.sleep(uid, delay, stopped.wait())
    finally:
        runtime.wakeups.forget(uid)
