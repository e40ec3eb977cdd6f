"""The per-database migration lock: two session advisory locks, one on the connection that
migrates and one on a connection of its own.

Session-level, so they are never inside a transaction and PostgreSQL drops each when its
connection ends, however it ends (a killed pod leaves no stale lock to clear by hand). The first
lives on the migrating connection, so that a killed runner's lock lasts until its backend has
stopped (and rolled back) what it ran. The second, the guard, lives on a connection no
migration can reach: a migration that calls ``pg_advisory_unlock_all()`` (or unlocks the first
key) releases the first lock, and a second runner would otherwise take it and apply the same
migrations at the same time. A runner takes the first, then the guard.

Waiters poll ``pg_try_advisory_lock`` instead of blocking in ``pg_advisory_lock``: a blocked
waiter would be part of the lock graph of a ``CREATE INDEX CONCURRENTLY`` running in the holder,
which PostgreSQL then resolves as a deadlock, and polling lets a waiter report who holds the lock
and give up at a deadline. The guard's connection is idle, outside any transaction, so it never
holds up a concurrent index build.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kubemigrate.engine.errors import LockTimeout
from kubemigrate.engine.pg.clock import from_microseconds, microseconds_sql
from kubemigrate.engine.pg.session import Session

LOCK_NAMESPACE = "kubemigrate.migrations"
GUARD_NAMESPACE = "kubemigrate.migrations.guard"


def lock_key(history_schema: str, namespace: str = LOCK_NAMESPACE) -> int:
    """A signed 64-bit key, stable across processes and versions, per history schema."""
    digest = hashlib.sha256(f"{namespace}:{history_schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def guard_key(history_schema: str) -> int:
    """The key of the guard lock (see the module's doc)."""
    return lock_key(history_schema, GUARD_NAMESPACE)


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, from pg_locks and pg_stat_activity."""

    pid: int
    application_name: str
    user: str | None
    client: str | None
    connected_since: datetime | None
    state: str | None

    def describe(self) -> str:
        since = (
            f" since {self.connected_since.isoformat(timespec='seconds')}"
            if self.connected_since
            else ""
        )
        who = self.application_name or "(no application_name)"
        by = f" as {self.user}" if self.user else ""
        at = f" from {self.client}" if self.client else ""
        return f"{who} (pid {self.pid}{by}{at}, connected{since}, {self.state or 'unknown'})"


_HOLDER_SQL = """
SELECT a.pid, coalesce(a.application_name, ''), a.usename::text, a.client_addr::text,
       {since}, a.state
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1
LIMIT 1
""".replace("{since}", microseconds_sql("a.backend_start"))


class AdvisoryLock:
    """Acquire with backoff up to a deadline, report the holder while waiting, release."""

    def __init__(
        self,
        session: Session,
        key: int,
        *,
        wait_seconds: float,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.key = key
        self.wait_seconds = wait_seconds
        self.on_wait = on_wait
        self.held = False

    def try_acquire(self) -> bool:
        rows = self.session.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
        self.held = bool(rows[0][0])
        return self.held

    def acquire(self, deadline: float | None = None) -> None:
        """Take the lock, polling with exponential backoff; LockTimeout at the deadline
        (``time.monotonic()``; default: ``wait_seconds`` from now)."""
        if self.try_acquire():
            return
        if deadline is None:
            deadline = time.monotonic() + self.wait_seconds
        delay, reported = 0.05, None
        holder = self.holder()
        while True:
            description = holder.describe() if holder else "a session that has since ended"
            if description != reported and self.on_wait:
                self.on_wait(f"waiting for the migration lock, held by {description}")
                reported = description
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(
                    f"gave up after {self.wait_seconds:g}s waiting for the migration lock held by"
                    f" {description}",
                    holder=description,
                )
            time.sleep(min(remaining, delay * random.uniform(0.8, 1.2)))  # noqa: S311
            delay = min(delay * 2, 2.0)
            if self.try_acquire():
                return
            holder = self.holder()

    def holder(self) -> LockHolder | None:
        """The session holding the lock now, if any."""
        high, low = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        rows = self.session.execute(_HOLDER_SQL, [high, low])
        if not rows:
            return None
        pid, app, user, client, since, state = rows[0]
        return LockHolder(pid, app, user, client, from_microseconds(since), state)

    def release(self) -> None:
        if self.held and not self.session.conn.closed:
            self.session.execute("SELECT pg_advisory_unlock(%s)", [self.key])
        self.held = False


class RunLock:
    """The two locks of one run (see the module's doc): ``acquire`` takes the first on the
    migrating session, then opens the guard's connection and takes the guard on it."""

    def __init__(
        self,
        session: Session,
        history_schema: str,
        *,
        connect: Callable[[], Session],
        wait_seconds: float,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.main = AdvisoryLock(
            session, lock_key(history_schema), wait_seconds=wait_seconds, on_wait=on_wait
        )
        self.connect = connect
        self.key = guard_key(history_schema)
        self.wait_seconds = wait_seconds
        self.on_wait = on_wait
        self.guard: AdvisoryLock | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait_seconds
        self.main.acquire(deadline)
        self.guard = AdvisoryLock(
            self.connect(), self.key, wait_seconds=self.wait_seconds, on_wait=self.on_wait
        )
        self.guard.acquire(deadline)

    @property
    def guard_session(self) -> Session | None:
        """The guard's connection while the lock is held: idle, for the engine's own looks
        at the server (who blocks the migrating session) while a migration runs."""
        return self.guard.session if self.guard is not None and self.guard.held else None

    def release(self) -> None:
        """Release both; the guard's connection is closed. Never raises for a connection
        that is gone (its lock went with it)."""
        guard, self.guard = self.guard, None
        try:
            self.main.release()
        finally:
            if guard is not None:
                guard.session.close()
