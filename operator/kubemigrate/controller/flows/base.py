"""What the flows of every kind share: status writes that the next step sees at once; and for
DatabaseBackup and DatabaseRestore, a daemon step's context and phases with their conditions.

Both kinds have the phases Pending, Running, Succeeded and Failed, which `conditions.health`
reads as Migration's do: Succeeded is Ready, Failed is Stalled, the rest Reconciling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kubemigrate.controller.build import status
from kubemigrate.controller.kube.api import KubeApi
from kubemigrate.controller.metrics import Metrics
from kubemigrate.settings import Settings

Emit = Callable[[str, str, str], None]


@dataclass
class FlowContext:
    """What one step of a backup or restore needs besides the object."""

    api: KubeApi
    settings: Settings
    emit: Emit
    metrics: Metrics
    logger: logging.Logger | logging.LoggerAdapter[Any] = field(
        default_factory=lambda: logging.getLogger("kubemigrate"))
    wake: Callable[[str], None] = lambda _uid: None
    """Wake another object's daemon by uid (the next backup in line)."""


def phase(name: str, reason: str, message: str, generation: int,
          previous: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A status patch moving to phase `name` (Migration's builder, minus its waitingFor)."""
    patch = status.phase(name, reason, message, generation, previous, **fields)
    if "waitingFor" not in fields:
        patch.pop("waitingFor", None)
    return patch


def seconds_between(started: str | None, ended: datetime) -> float | None:
    """durationSeconds from an RFC 3339 start to ended."""
    if not started:
        return None
    begun = datetime.fromisoformat(started.replace("Z", "+00:00"))
    return round(max(0.0, (ended - begun).total_seconds()), 3)


def utcnow() -> datetime:
    return datetime.now(UTC)


class HasApi(Protocol):
    """Any step context: all a status write needs from it is the API."""

    api: KubeApi


class ResourceFlow:
    """Status writes for one object of `plural`, remembered until the watch catches up, so the
    next step sees its own writes even before the watch stream delivers them."""

    plural = ""

    def __init__(self) -> None:
        self._latest: dict[str, Any] | None = None

    async def _write(self, obj: dict[str, Any], ctx: HasApi, patch: dict[str, Any]) -> None:
        meta = obj["metadata"]
        updated = await ctx.api.patch_status(self.plural, meta["namespace"], meta["name"], patch)
        if updated is not None:
            self._latest = updated
            obj["status"] = updated.get("status") or {}
            obj["metadata"] = updated["metadata"]

    def _freshest(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The live body, or our last write if the watch has not delivered it yet."""
        live = {"metadata": dict(body.get("metadata") or {}), "spec": dict(body.get("spec") or {}),
                "status": dict(body.get("status") or {})}
        latest = self._latest
        if latest is None:
            return live
        try:
            newer = int(latest["metadata"]["resourceVersion"]) > int(
                live["metadata"].get("resourceVersion", 0))
        except (KeyError, ValueError):
            newer = False
        if newer and latest["metadata"].get("generation") == live["metadata"].get("generation"):
            return {"metadata": dict(latest["metadata"]), "spec": live["spec"],
                    "status": dict(latest.get("status") or {})}
        return live
