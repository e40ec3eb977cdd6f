"""Pod status documents as the kubelet would report them, for a JSON merge patch of pods/status.

A merge patch replaces lists whole, so each document carries the complete containerStatuses and
conditions; conditions of types the node does not own (set by controllers) are kept.
"""

from __future__ import annotations

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


def _conditions(pod: Obj, ready: bool, reason: str | None) -> list[Obj]:
    current = (pod.get("status") or {}).get("conditions") or []
    kept = [c for c in current if c.get("type") not in NODE_CONDITIONS]
    since = {c["type"]: c for c in current}
    out: list[Obj] = []
    for kind in NODE_CONDITIONS:
        ok = ready if kind in ("ContainersReady", "Ready") else True
        status = "True" if ok else "False"
        previous = since.get(kind) or {}
        cond: Obj = {
            "type": kind,
            "status": status,
            "lastTransitionTime": previous.get("lastTransitionTime")
            if previous.get("status") == status
            else now(),
        }
        if not ok and reason:
            cond["reason"] = reason
        out.append(cond)
    return kept + out


def _document(
    pod: Obj,
    phase: str,
    container: Obj,
    *,
    ready: bool,
    state: Obj,
    restart_count: int,
    container_id: str | None,
    last_state: Obj | None,
    not_ready_reason: str | None = None,
) -> Obj:
    status: Obj = {
        "phase": phase,
        "startTime": (pod.get("status") or {}).get("startTime") or now(),
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "conditions": _conditions(pod, ready, not_ready_reason),
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container.get("image") or "",
                "imageID": "",
                "ready": ready,
                "started": "running" in state,
                "restartCount": restart_count,
                "state": state,
                "lastState": last_state or {},
                **({"containerID": container_id} if container_id else {}),
            }
        ],
    }
    return status


def waiting(
    pod: Obj,
    container: Obj,
    *,
    reason: str,
    message: str,
    restart_count: int,
    last_state: Obj | None,
) -> Obj:
    """Not (or not yet again) running: Pending before the first start, Running between restarts."""
    phase = "Running" if restart_count or last_state else "Pending"
    return _document(
        pod,
        phase,
        container,
        ready=False,
        state={"waiting": {"reason": reason, "message": message}},
        restart_count=restart_count,
        container_id=None,
        last_state=last_state,
        not_ready_reason="ContainersNotReady",
    )


def running(
    pod: Obj,
    container: Obj,
    *,
    started_at: str,
    restart_count: int,
    container_id: str,
    last_state: Obj | None,
) -> Obj:
    """Started, and Ready at once: the node runner runs no readiness probes."""
    return _document(
        pod,
        "Running",
        container,
        ready=True,
        state={"running": {"startedAt": started_at}},
        restart_count=restart_count,
        container_id=container_id,
        last_state=last_state,
    )


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


def finished(
    pod: Obj,
    container: Obj,
    state: Obj,
    *,
    restart_count: int,
    container_id: str,
    last_state: Obj | None,
    pod_reason: str | None = None,
    pod_message: str | None = None,
) -> Obj:
    """The terminal status: Succeeded if the container exited 0, else Failed."""
    exit_code = state["terminated"]["exitCode"]
    phase = "Succeeded" if exit_code == 0 and not pod_reason else "Failed"
    doc = _document(
        pod,
        phase,
        container,
        ready=False,
        state=state,
        restart_count=restart_count,
        container_id=container_id,
        last_state=last_state,
        not_ready_reason="PodCompleted" if phase == "Succeeded" else "PodFailed",
    )
    if pod_reason:
        doc["reason"], doc["message"] = pod_reason, pod_message or pod_reason
    return doc
