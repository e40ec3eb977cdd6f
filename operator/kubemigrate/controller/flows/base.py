"""What the flows of every kind share: reading status through the kind's model, and writing a
phase change that the next step sees at once, even before the watch stream delivers it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Protocol

from kubemigrate.controller.build.status import StatusT, moved, patch, status_of
from kubemigrate.controller.kube.api import KubeApi
from kubemigrate.engine import AuthenticationFailed, InvalidUrl

REFUSED_LOGIN = frozenset({AuthenticationFailed.reason, InvalidUrl.reason})
"""A Job's reasons for a refused login (a wrong password, a Secret value that is no PostgreSQL
URL): every kind retries them with backoff, then stalls after the operator's loginAttempts."""


class HasApi(Protocol):
    """Any step context: all a status write needs from it is the API."""

    api: KubeApi


class StatusWriter(Generic[StatusT]):
    """Status of one object of `plural` (one writer per daemon), read and written as `model`;
    its last write is remembered until the watch catches up."""

    def __init__(self, plural: str, model: type[StatusT]) -> None:
        self.plural = plural
        self.model: type[StatusT] = model
        self._latest: dict[str, Any] | None = None

    def current(self, obj: Mapping[str, Any]) -> StatusT:
        """obj's status as its model (the API server validated it against the same schema)."""
        return status_of(self.model, obj)

    def complete(self, change: StatusT) -> StatusT:
        """What a kind adds to every change of its own (nothing, unless overridden)."""
        return change

    async def write(self, obj: dict[str, Any], ctx: HasApi, change: StatusT) -> None:
        """Merge-patch change (a phase change, see `moved`) into obj's status, and into obj."""
        meta = obj["metadata"]
        full = moved(
            self.complete(change), int(meta.get("generation", 1)), self.current(obj).conditions
        )
        updated = await ctx.api.patch_status(
            self.plural, meta["namespace"], meta["name"], patch(full)
        )
        if updated is not None:
            self._latest = updated
            obj["status"] = updated.get("status") or {}
            obj["metadata"] = updated["metadata"]

    def freshest(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The live body, or our last write if the watch has not delivered it yet."""
        return freshest_of(body, self._latest)


def freshest_of(body: Mapping[str, Any], latest: Mapping[str, Any] | None) -> dict[str, Any]:
    """The live body, or ``latest`` (a writer's last write of its status) when it is newer and
    of the same generation: the watch may not have delivered our own write yet."""
    live = {
        "metadata": dict(body.get("metadata") or {}),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
    if latest is None:
        return live
    try:
        newer = int(latest["metadata"]["resourceVersion"]) > int(
            live["metadata"].get("resourceVersion", 0)
        )
    except (KeyError, ValueError):
        newer = False
    if newer and latest["metadata"].get("generation") == live["metadata"].get("generation"):
        return {
            "metadata": dict(latest["metadata"]),
            "spec": live["spec"],
            "status": dict(latest.get("status") or {}),
        }
    return live
