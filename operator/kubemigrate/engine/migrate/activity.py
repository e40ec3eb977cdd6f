"""What a run is doing, and who blocks it: for messages that name the cause.

``Activity.doing`` names the migration (or batch, or statement) on the wire, so that a
connection lost mid-run (a server that went away, a migration that terminated its own backend)
is reported against it. ``BlockerWatch`` looks, from the guard lock's connection, for the
sessions that block the migrating one: a ``lock_timeout`` error says nothing of who held the
lock, and once it is raised the wait is over and ``pg_blocking_pids`` has nothing to say, so the
watcher asks while the wait lasts, a few times per lock_timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from kubemigrate.engine.pg.clock import from_microseconds, microseconds_sql
from kubemigrate.engine.pg.session import Session, SqlError

_BLOCKERS = f"""
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       {microseconds_sql("a.query_start")}, {microseconds_sql("a.xact_start")}
FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids(%s)) ORDER BY a.pid
"""


@dataclass
class Activity:
    """One run's current doing, and how to learn who blocked it."""

    doing: str | None = None
    """What is on the wire: "apply of migration 5", "apply of migration 7, statement 2 (line
    3)", ..."""
    blockers: Callable[[], str | None] = field(default=lambda: None)
    """Who blocked the migrating session since last asked, in words; None if nobody was seen."""


@dataclass(frozen=True)
class Blocker:
    """A session the migrating one waited for."""

    pid: int
    application: str
    state: str
    query_start: int | None
    xact_start: int | None

    def describe(self) -> str:
        started = from_microseconds(self.query_start)
        since = from_microseconds(self.xact_start)
        parts = [self.application or "no application_name", self.state or "unknown state"]
        if started is not None:
            parts.append(f"query started {started.isoformat(timespec='seconds')}")
        if since is not None and self.state.startswith("idle in transaction"):
            parts.append(f"transaction open since {since.isoformat(timespec='seconds')}")
        return f"pid {self.pid} ({', '.join(parts)})"


class BlockerWatch:
    """Asks, every ``interval`` seconds on the guard's connection, which sessions block the
    migrating session (backend ``pid``), while a run goes on; ``take`` says who was seen."""

    def __init__(self, session: Session, pid: int, interval: float) -> None:
        self.session = session
        self.pid = pid
        self.interval = interval
        self._seen: dict[int, Blocker] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="kubemigrate-blockers", daemon=True
        )

    def __enter__(self) -> BlockerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rows = self.session.execute(_BLOCKERS, [self.pid])
            except psycopg.Error:
                return  # the guard's connection is gone; the run will find out
            if rows:
                with self._lock:
                    for row in rows:
                        self._seen[row[0]] = Blocker(*row)

    def take(self) -> str | None:
        """The sessions seen blocking since the last call, described; None if none."""
        with self._lock:
            seen, self._seen = self._seen, {}
        return "; ".join(b.describe() for b in seen.values()) or None


def watch_interval(lock_timeouts: list[float | None]) -> float:
    """How often to look: a few times within the shortest lock_timeout, between 20 ms and half
    a second."""
    positive = [t for t in lock_timeouts if t]
    return min(0.5, max(0.02, min(positive) / 4)) if positive else 0.5


def lost_reason(session: Session, exc: psycopg.Error) -> str:
    """Why the connection was lost: the server's last fatal error on it, else the driver's."""
    lost: SqlError | None = session.lost
    if lost is not None:
        return f"{lost.message} [{lost.sqlstate}]" if lost.sqlstate else lost.message
    return " ".join(str(exc).split())
