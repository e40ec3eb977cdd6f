"""Waking an object's daemon early: when its spec changes, when a Job it waits for finishes,
or when the object ahead of it in its database's queue settles. Without a wake-up a daemon
still looks again after its own timeout, so a lost wake-up costs latency, never correctness."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable


class Wakeups:
    """One asyncio.Event per object uid."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def wake(self, uid: str) -> None:
        event = self._events.get(uid)
        if event is not None:
            event.set()

    def forget(self, uid: str) -> None:
        self._events.pop(uid, None)

    async def sleep(self, uid: str, delay: float, stopped: Awaitable[object]) -> None:
        """Return after delay seconds, on a wake-up for uid, or when stopped resolves."""
        event = self._events.setdefault(uid, asyncio.Event())
        if event.is_set():
            event.clear()
            return
        woken = asyncio.ensure_future(event.wait())
        stop = asyncio.ensure_future(stopped)
        try:
            await asyncio.wait({woken, stop}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (woken, stop):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            event.clear()
