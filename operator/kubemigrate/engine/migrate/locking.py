"""The per-database migration lock: a session advisory lock on the connection that migrates.

Session-level, so it is never inside a transaction and PostgreSQL drops it when the holder's
connection ends, however it ends (a killed pod leaves no stale lock to clear by hand). Waiters
poll ``pg_try_advisory_lock`` instead of blocking in ``pg_advisory_lock``: a blocked waiter
would be part of the lock graph of a ``CREATE INDEX CONCURRENTLY`` running in the holder, which
PostgreSQL then resolves as a deadlock, and polling lets a waiter report who holds the lock and
give up at a deadline.
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


def lock_key(history_schema: str) -> int:
    """A signed 64-bit key, stable across processes and versions, per history schema."""
    digest = hashlib.sha256(f"{LOCK_NAMESPACE}:{history_schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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

    def acquire(self) -> None:
        """Take the lock, polling with exponential backoff; LockTimeout at the deadline."""
        if self.try_acquire():
            return
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
