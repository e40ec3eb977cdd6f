"""One pod on the local node: a thread that runs its first container in a sandbox, restarts it as
restartPolicy says, reports its status, and kills it when the pod goes away.

Restarts happen in place, as the kubelet does them: `Always` after any exit (Deployment pods),
`OnFailure` after a non-zero exit (the Job controller counts restartCount against backoffLimit);
the back-off starts at 1 s and doubles up to 60 s (the kubelet's 10 s start is too slow for tests).
A missing Secret, ConfigMap or key keeps the container waiting (CreateContainerConfigError) and is
retried, as the kubelet does. Killing follows the kubelet too: SIGTERM to the pod's processes,
SIGKILL after terminationGracePeriodSeconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from harness.node import dirs
from harness.node import status as pod_status
from harness.node.env import container_argv, container_env, first_container, service_env
from harness.node.refs import ConfigError, Obj, PodError, Refs
from harness.node.sandbox import bwrap_argv
from harness.node.volumes import container_mounts

log = logging.getLogger("node-runner")

BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET = 1.0, 60.0, 120.0
CONFIG_RETRY = 2.0
SHUTDOWN_GRACE = 3.0
LOG_TAIL_LINES, LOG_TAIL_BYTES = 80, 2048  # FallbackToLogsOnError, as the kubelet
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


@dataclass(frozen=True)
class Node:
    """What every pod worker needs from the runner."""

    core: kubernetes.client.CoreV1Api
    state_dir: Path
    path: str  # PATH for containers that do not set one
    api_port: int


def exit_code(returncode: int) -> int:
    """A container runtime's exit code: 128 + N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def signal_sandbox(leader: int, sig: int) -> None:
    """Signal the pod's processes (bwrap's process group) but not the outer bwrap, so that it
    stays to report the exit status; with nothing else left, kill the whole group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:
            members.append(int(entry.name))
    targets = members if members and sig != signal.SIGKILL else []
    for pid in targets:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
    if not targets:
        with contextlib.suppress(OSError):
            os.killpg(leader, sig)


class PodWorker(threading.Thread):
    """Supervises one pod until it ends, is deleted, or the runner stops."""

    def __init__(self, node: Node, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"{meta['namespace']}/{meta['name']}", daemon=True)
        self.node, self.pod = node, pod
        self.namespace, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.container = first_container(pod)
        spec = pod["spec"]
        self.policy: str = spec.get("restartPolicy") or "Always"
        grace = spec.get("terminationGracePeriodSeconds")
        self.grace = float(30 if grace is None else grace)
        ads = spec.get("activeDeadlineSeconds")
        self.deadline = time.monotonic() + ads if ads else None
        self.restart_count = 0
        self.last_state: Obj | None = None
        self.container_id = ""
        self.deadline_exceeded = False
        self._halt = threading.Event()
        self._shutdown = False
        self._last_waiting = ""

    # --- called from the runner's thread -------------------------------------------------
    def stop(self, shutdown: bool = False) -> None:
        """Kill the pod's process: it was deleted (or, with shutdown, the runner is exiting and
        leaves the pod's status alone)."""
        if shutdown:
            self._shutdown = True
            self.grace = min(self.grace, SHUTDOWN_GRACE)
        self._halt.set()

    # --- the worker thread -----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._live()
        except Exception as e:
            log.exception("%s: node runner error", self.name)
            if not self._halt.is_set():
                self._fail(f"node runner error: {e!r}", reason="NodeRunnerError")
        finally:
            shutil.rmtree(dirs.pod_dir(self.node.state_dir, self.uid), ignore_errors=True)

    def _live(self) -> None:  # noqa: C901 - split when the runner starts containers from images
        spec = self.pod["spec"]
        ignored = [
            c["name"] for c in [*(spec.get("initContainers") or []), *spec["containers"][1:]]
        ]
        if ignored:
            log.warning(
                "%s: runs only container %s; ignoring %s",
                self.name,
                self.container["name"],
                ", ".join(ignored),
            )
        if not self._adopt():
            return
        backoff = BACKOFF_START
        state: Obj | None = None
        while not self._halt.is_set() and not self._past_deadline():
            began = time.monotonic()
            try:
                argv, env = self._prepare()
            except (ConfigError, ApiException, urllib3.exceptions.HTTPError) as e:
                # Missing objects, or the API briefly unreachable: retried, as by the kubelet.
                reason = f"{e.status} {e.reason}" if isinstance(e, ApiException) else str(e)
                self._waiting("CreateContainerConfigError", reason)
                self._halt.wait(CONFIG_RETRY)
                continue
            except _StartError as e:
                state = pod_status.terminated_state(
                    128, str(e), pod_status.now(), "", reason="StartError"
                )
            except PodError as e:
                self._fail(str(e), reason="NodeRunnerError")
                return
            else:
                state = self._run_once(argv, env)
            code = state["terminated"]["exitCode"]
            log.info("%s: exited %d", self.name, code)
            if self._halt.is_set() or self.deadline_exceeded:
                break
            if not (self.policy == "Always" or (self.policy == "OnFailure" and code != 0)):
                self._finish(state)
                return
            if time.monotonic() - began > BACKOFF_RESET:
                backoff = BACKOFF_START
            self.last_state, self.restart_count = state, self.restart_count + 1
            self._waiting(
                "CrashLoopBackOff",
                f"back-off {backoff:.0f}s restarting failed "
                f"container={self.container['name']} pod={self.pod_name}",
            )
            self._halt.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
        if self.deadline_exceeded:
            self._fail(DEADLINE_MESSAGE, reason="DeadlineExceeded", state=state)
        elif state is not None:
            self._finish(state)  # deleted: report how the kill ended it, as the kubelet does

    def _past_deadline(self) -> bool:
        """The pod's own activeDeadlineSeconds (rare; Jobs have their own)."""
        if self.deadline and time.monotonic() >= self.deadline:
            self.deadline_exceeded = True
        return self.deadline_exceeded

    def _adopt(self) -> bool:
        """A pod already Running was started by an earlier runner whose process is gone: restart
        it in place, or fail it if it may not restart. False if the pod is done."""
        status = self.pod.get("status") or {}
        if status.get("phase") != "Running":
            return True
        previous = (status.get("containerStatuses") or [{}])[0]
        self.restart_count = int(previous.get("restartCount") or 0)
        lost = pod_status.terminated_state(
            137,
            "the node runner restarted and lost this container's process",
            (previous.get("state") or {}).get("running", {}).get("startedAt") or pod_status.now(),
            previous.get("containerID") or "",
        )
        if self.policy == "Never":
            self._finish(lost)
            return False
        self.last_state, self.restart_count = lost, self.restart_count + 1
        return True

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        """The sandboxed argv and the environment of the next container start."""
        refs = Refs(self.node.core, self.pod)
        kube_env = container_env(self.container, refs, service_env(self.node.api_port))
        argv = container_argv(self.container, kube_env)
        mounts = container_mounts(self.pod, self.container, refs, self.node.state_dir, kube_env)
        hostname = self.pod["spec"].get("hostname") or self.pod_name
        env = {"PATH": self.node.path, "HOME": "/root", "HOSTNAME": hostname, **kube_env}
        term = dirs.termination_log(self.node.state_dir, self.uid)
        full = bwrap_argv(
            argv,
            mounts=mounts,
            termination_log=term,
            termination_path=self.container.get("terminationMessagePath") or "/dev/termination-log",
            workdir=self.container.get("workingDir"),
            hostname=hostname,
        )
        if "/" not in argv[0] and not shutil.which(argv[0], path=env["PATH"]):
            raise _StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
        return full, env

    def _run_once(self, argv: list[str], env: dict[str, str]) -> Obj:
        """Start the container, report it Running, wait for it; its terminated state."""
        logfile = dirs.pod_log_path(self.node.state_dir, self.namespace, self.pod_name)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        term = dirs.termination_log(self.node.state_dir, self.uid)
        term.parent.mkdir(parents=True, exist_ok=True)
        term.write_bytes(b"")
        offset = logfile.stat().st_size if logfile.exists() else 0
        started = pod_status.now()
        with logfile.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd="/",
                start_new_session=True,
            )
        self.container_id = f"local://{self.uid[:8]}-{proc.pid}"
        log.info(
            "%s: started pid %d (restart %d): %s",
            self.name,
            proc.pid,
            self.restart_count,
            argv[argv.index("--") + 1 :],
        )
        self._patch(
            pod_status.running(
                self.pod,
                self.container,
                started_at=started,
                restart_count=self.restart_count,
                container_id=self.container_id,
                last_state=self.last_state,
            )
        )
        code = exit_code(self._wait(proc))
        message = self._termination_message(term, logfile, offset, code)
        return pod_status.terminated_state(code, message, started, self.container_id)

    def _wait(self, proc: subprocess.Popen[bytes]) -> int:
        """Wait for the process; on stop or the pod's deadline, SIGTERM, then SIGKILL."""
        kill_at: float | None = None
        while True:
            try:
                return proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if kill_at is None:
                if self._halt.is_set() or self._past_deadline():
                    log.info(
                        "%s: terminating pid %d (grace %.0fs)", self.name, proc.pid, self.grace
                    )
                    signal_sandbox(proc.pid, signal.SIGTERM)
                    kill_at = now + self.grace
            elif now >= kill_at:
                signal_sandbox(proc.pid, signal.SIGKILL)
                kill_at = now + 3600

    def _termination_message(self, term: Path, logfile: Path, offset: int, code: int) -> str:
        try:
            with term.open("rb") as f:
                message = f.read(pod_status.MAX_MESSAGE).decode(errors="replace")
        except OSError:
            message = ""
        policy = self.container.get("terminationMessagePolicy")
        if not message and code != 0 and policy == "FallbackToLogsOnError":
            with logfile.open("rb") as f:
                f.seek(offset)
                lines = f.read().splitlines(keepends=True)[-LOG_TAIL_LINES:]
            message = b"".join(lines)[-LOG_TAIL_BYTES:].decode(errors="replace")
        return message

    # --- status ----------------------------------------------------------------------------
    def _waiting(self, reason: str, message: str) -> None:
        if f"{reason}:{message}" != self._last_waiting:
            log.info("%s: waiting: %s: %s", self.name, reason, message)
            self._last_waiting = f"{reason}:{message}"
            self._patch(
                pod_status.waiting(
                    self.pod,
                    self.container,
                    reason=reason,
                    message=message,
                    restart_count=self.restart_count,
                    last_state=self.last_state,
                )
            )

    def _finish(self, state: Obj, reason: str | None = None, message: str | None = None) -> None:
        if self._shutdown:
            return
        self._patch(
            pod_status.finished(
                self.pod,
                self.container,
                state,
                restart_count=self.restart_count,
                container_id=self.container_id,
                last_state=self.last_state,
                pod_reason=reason,
                pod_message=message,
            )
        )

    def _fail(self, message: str, reason: str, state: Obj | None = None) -> None:
        """Fail the pod, with reason and message on the pod; state is the container's last."""
        log.warning("%s: failed: %s: %s", self.name, reason, message)
        if state is None:
            state = pod_status.terminated_state(
                128, message, pod_status.now(), self.container_id, reason="StartError"
            )
        self._finish(state, reason, message)

    def _patch(self, status: Obj) -> None:
        """Merge-patch pods/status, retrying transient errors; a deleted pod is fine."""
        for attempt in range(6):
            try:
                self.node.core.patch_namespaced_pod_status(
                    self.pod_name,
                    self.namespace,
                    {"status": status},
                    _content_type="application/merge-patch+json",
                    _preload_content=False,
                )
            except ApiException as e:
                if e.status == 404:
                    return
                if e.status in (400, 409, 422):
                    log.error("%s: status patch rejected: %s %s", self.name, e.status, e.body)
                    return
                log.warning("%s: status patch failed (%s), retrying", self.name, e.status)
            except (urllib3.exceptions.HTTPError, OSError) as e:
                log.warning("%s: status patch failed (%s), retrying", self.name, e)
            else:
                self.pod = {**self.pod, "status": status}
                return
            time.sleep(0.5 * 2**attempt)


class _StartError(PodError):
    """The command does not exist: reported like a runtime's StartError."""
