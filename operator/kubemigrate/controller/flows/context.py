"""What a flow's step needs besides the object, the same for every kind: the API, the settings,
a way to post Events, the metrics, a logger and a way to wake another object's daemon; and the
exponential backoff a flow applies to failures that time may cure."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubemigrate.controller.flows.inflight import InFlight
from kubemigrate.controller.kube.api import KubeApi
from kubemigrate.controller.metrics import Metrics
from kubemigrate.settings import Settings

Emit = Callable[[str, str, str], None]
"""(type, reason, message) -> posts a Kubernetes Event about the object."""


@dataclass
class StepContext:
    """The outside world of one step, built by the daemon (by a test, with a fake API)."""

    api: KubeApi
    settings: Settings
    emit: Emit
    metrics: Metrics
    logger: logging.Logger | logging.LoggerAdapter[Any] = field(
        default_factory=lambda: logging.getLogger("kubemigrate")
    )
    wake: Callable[[str], None] = lambda _uid: None
    """Wake another object's daemon by uid (the next migration or backup in line)."""
    inflight: InFlight = field(default_factory=InFlight)
    """Engine runs in worker threads, for the deletion handler to stop (shared per process)."""


class Backoff:
    """Exponential delay with jitter for transient failures; reset by success."""

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self.failures = first, cap, 0

    @classmethod
    def of(cls, settings: Settings) -> Backoff:
        return cls(settings.retry_min_seconds, settings.retry_max_seconds)

    def next(self) -> float:
        delay = self.delay(self.failures)
        self.failures += 1
        return delay

    def delay(self, failures: int) -> float:
        """The delay after `failures` earlier failures, with no state of its own (a flow that
        keeps the count in status gets the same delay after a restart)."""
        delay = min(self.cap, self.first * 2.0 ** min(failures, 32))
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not cryptography)

    def reset(self) -> None:
        self.failures = 0
