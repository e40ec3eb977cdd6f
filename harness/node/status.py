"""Pod status documents as the kubelet would report them, for a JSON merge patch of pods/status.

A merge patch replaces lists whole, so each document carries the complete container statuses and
conditions; conditions of types the node does not own (set by controllers) are kept. The worker
keeps one Tracked per container (init containers and the main one) and renders them here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from harness.node.refs import POD_IP, Obj

NODE_CONDITIONS = (
    "PodScheduled",
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
)
MAX_MESSAGE = 4096  # the kubelet's cap on a termination message


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting_state(reason: str, message: str = "") -> Obj:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def terminated_state(
    exit_code: int, message: str, started_at: str, container_id: str, reason: str | None = None
) -> Obj:
    """A containerStatuses[].state.terminated value."""
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "message": message,
            "startedAt": started_at,
            "finishedAt": now(),
            "containerID": container_id,
        }
    }


@dataclass
class Tracked:
    """One container's status, as the kubelet keeps it."""

    container: Obj
    state: Obj = field(default_factory=lambda: waiting_state("ContainerCreating"))
    restart_count: int = 0
    last_state: Obj | None = None
    container_id: str = ""
    image_id: str = ""
    ready: bool = False

    @property
    def name(self) -> str:
        name: str = self.container["name"]
        return name

    def exit_code(self) -> int | None:
        terminated = self.state.get("terminated")
        return None if terminated is None else int(terminated["exitCode"])

    def document(self) -> Obj:
        return {
            "name": self.name,
            "image": self.container.get("image") or "",
            "imageID": self.image_id,
            "ready": self.ready,
            "started": "running" in self.state,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state or {},
            **({"containerID": self.container_id} if self.container_id else {}),
        }


def _condition(previous: Obj, kind: str, ok: bool, reason: str | None) -> Obj:
    status = "True" if ok else "False"
    cond: Obj = {
        "type": kind,
        "status": status,
        "lastTransitionTime": previous.get("lastTransitionTime")
        if previous.get("status") == status
        else now(),
    }
    if not ok and reason:
        cond["reason"] = reason
    return cond


def _conditions(pod: Obj, phase: str, initialized: bool, ready: bool) -> list[Obj]:
    current = (pod.get("status") or {}).get("conditions") or []
    kept = [c for c in current if c.get("type") not in NODE_CONDITIONS]
    since = {c["type"]: c for c in current}
    not_ready = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(
        phase, "ContainersNotReady"
    )
    wanted = {
        "Initialized": (initialized, "ContainersNotInitialized"),
        "ContainersReady": (ready, not_ready),
        "Ready": (ready, not_ready),
    }
    out = [
        _condition(since.get(kind) or {}, kind, *wanted.get(kind, (True, None)))
        for kind in NODE_CONDITIONS
    ]
    return kept + out


def document(
    pod: Obj,
    phase: str,
    init: list[Tracked],
    main: Tracked,
    *,
    initialized: bool,
    reason: str | None = None,
    message: str | None = None,
) -> Obj:
    """The pod's whole status: phase, conditions, and every container's status."""
    status: Obj = {
        "phase": phase,
        "startTime": (pod.get("status") or {}).get("startTime") or now(),
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "conditions": _conditions(pod, phase, initialized, main.ready),
        "containerStatuses": [main.document()],
    }
    if init:
        status["initContainerStatuses"] = [t.document() for t in init]
    if reason:
        status["reason"], status["message"] = reason, message or reason
    return status
