"""One pod on the local node: a thread that runs its init containers in order, then its first
container, restarts them as restartPolicy says, reports their status, and kills them when the
pod goes away.

Restarts happen in place, as the kubelet does them: `Always` after any exit (Deployment pods),
`OnFailure` after a non-zero exit (the Job controller counts restartCount against backoffLimit);
the back-off starts at 1 s and doubles up to 60 s (the kubelet's 10 s start is too slow for tests).
Each init container must exit 0 before the next starts; a failed one is restarted the same way,
except under `Never`, where it fails the pod. A missing Secret, ConfigMap or key keeps the
container waiting (CreateContainerConfigError), an image missing from local storage too
(ErrImagePull, then ImagePullBackOff); both are retried, as the kubelet does. Killing follows the
kubelet too: SIGTERM to the pod's processes, SIGKILL after terminationGracePeriodSeconds.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable

import urllib3
from kubernetes.client.exceptions import ApiException

from harness.node import dirs
from harness.node import status as pod_status
from harness.node.env import first_container
from harness.node.launch import ImagePullError, Launch, Node, StartError, prepare
from harness.node.process import Run
from harness.node.refs import ConfigError, Obj, PodError
from harness.node.status import Tracked, terminated_state, waiting_state

log = logging.getLogger("node-runner")

BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET = 1.0, 60.0, 120.0
CONFIG_RETRY = 2.0
PULL_ERROR_SHOWN = 1.0  # ErrImagePull shows this long before ImagePullBackOff
SHUTDOWN_GRACE = 3.0
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


class PodWorker(threading.Thread):
    """Supervises one pod until it ends, is deleted, or the runner stops."""

    def __init__(self, node: Node, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        super().__init__(name=f"{meta['namespace']}/{meta['name']}", daemon=True)
        self.node, self.pod = node, pod
        self.namespace, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.policy: str = spec.get("restartPolicy") or "Always"
        grace = spec.get("terminationGracePeriodSeconds")
        self.grace = float(30 if grace is None else grace)
        ads = spec.get("activeDeadlineSeconds")
        self.deadline = time.monotonic() + ads if ads else None
        inits = spec.get("initContainers") or []
        self.init = [Tracked(c, waiting_state("PodInitializing")) for c in inits]
        self.main = Tracked(
            first_container(pod), waiting_state("PodInitializing" if inits else "ContainerCreating")
        )
        self.initialized = not inits
        self.main_started = False
        self.ended = False  # a terminal status was reported
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

    def _live(self) -> None:
        ignored = [c["name"] for c in self.pod["spec"]["containers"][1:]]
        if ignored:
            log.warning(
                "%s: runs only container %s; ignoring %s",
                self.name,
                self.main.name,
                ", ".join(ignored),
            )
        if not self._adopt():
            return
        if not self.initialized and not self._initialize():
            return
        self._end(self.main, self._until_final(self.main, self._main_is_final))

    def _main_is_final(self, code: int) -> bool:
        return not (self.policy == "Always" or (self.policy == "OnFailure" and code != 0))

    def _initialize(self) -> bool:
        """Every init container to a zero exit, in order; False if the pod ended instead."""
        for t in self.init:
            state = self._until_final(t, lambda code: code == 0 or self.policy == "Never")
            if state is None or t.exit_code() != 0 or self._halt.is_set() or self.deadline_exceeded:
                self._end(t, state)
                return False
        self.initialized = True
        return True

    def _end(self, t: Tracked, state: Obj | None) -> None:
        """Report how the pod ended after t's last run (state), unless it already did."""
        if self.ended:
            return
        if self.deadline_exceeded:
            self._fail(DEADLINE_MESSAGE, reason="DeadlineExceeded", t=t, state=state)
        elif state is not None:
            self._finish(t, state)  # also when deleted: how the kill ended it, as the kubelet

    def _past_deadline(self) -> bool:
        """The pod's own activeDeadlineSeconds (rare; Jobs have their own)."""
        if self.deadline and time.monotonic() >= self.deadline:
            self.deadline_exceeded = True
        return self.deadline_exceeded

    def _stopping(self) -> bool:
        return self._halt.is_set() or self._past_deadline()

    def _adopt(self) -> bool:
        """A pod already Running was started by an earlier runner whose process is gone: restart
        it in place, or fail it if it may not restart. False if the pod is done."""
        status = self.pod.get("status") or {}
        if status.get("phase") != "Running":
            return True
        self.initialized = self.main_started = True
        earlier = {s.get("name"): s for s in status.get("initContainerStatuses") or []}
        for t in self.init:
            t.state = (earlier.get(t.name) or {}).get("state") or t.state
        previous = (status.get("containerStatuses") or [{}])[0]
        self.main.restart_count = int(previous.get("restartCount") or 0)
        lost = terminated_state(
            137,
            "the node runner restarted and lost this container's process",
            (previous.get("state") or {}).get("running", {}).get("startedAt") or pod_status.now(),
            previous.get("containerID") or "",
        )
        if self.policy == "Never":
            self._finish(self.main, lost)
            return False
        self.main.last_state, self.main.restart_count = lost, self.main.restart_count + 1
        return True

    def _until_final(self, t: Tracked, is_final: Callable[[int], bool]) -> Obj | None:
        """Run t, restarting it with back-off, until is_final(its exit code) or the pod stops:
        its last terminated state (None if it never ran)."""
        backoff = BACKOFF_START
        state: Obj | None = None
        while not self._stopping() and not self.ended:
            began = time.monotonic()
            state = self._attempt(t)
            if state is None:
                break
            code = state["terminated"]["exitCode"]
            log.info("%s: %s exited %d", self.name, t.name, code)
            if self._stopping() or is_final(code):
                break
            if time.monotonic() - began > BACKOFF_RESET:
                backoff = BACKOFF_START
            t.last_state, t.restart_count = state, t.restart_count + 1
            self._waiting(
                t,
                "CrashLoopBackOff",
                f"back-off {backoff:.0f}s restarting failed container={t.name} pod={self.pod_name}",
            )
            self._halt.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
        return state

    def _attempt(self, t: Tracked) -> Obj | None:
        """Start t once and wait for it: its terminated state, or None if the pod stopped (or
        failed) before it could start."""
        pull_backoff = BACKOFF_START
        while not self._stopping():
            try:
                launch = prepare(self.node, self.pod, t.container)
            except (ConfigError, ApiException, urllib3.exceptions.HTTPError) as e:
                # Missing objects, or the API briefly unreachable: retried, as by the kubelet.
                reason = f"{e.status} {e.reason}" if isinstance(e, ApiException) else str(e)
                self._waiting(t, "CreateContainerConfigError", reason)
                self._halt.wait(CONFIG_RETRY)
            except ImagePullError as e:
                self._pull_back_off(t, e, pull_backoff)
                pull_backoff = min(pull_backoff * 2, BACKOFF_MAX)
            except StartError as e:
                t.state = terminated_state(128, str(e), pod_status.now(), "", reason="StartError")
                return t.state
            except PodError as e:
                self._fail(str(e), reason="NodeRunnerError", t=t)
                return None
            else:
                return self._run_once(t, launch)
        return None

    def _pull_back_off(self, t: Tracked, error: ImagePullError, delay: float) -> None:
        """ErrImagePull for a moment, then ImagePullBackOff until the next try."""
        self._waiting(t, error.reason, str(error))
        if error.reason != "ErrImagePull" or self._halt.wait(PULL_ERROR_SHOWN):
            self._halt.wait(delay)
            return
        image = t.container.get("image") or ""
        self._waiting(t, "ImagePullBackOff", f'Back-off pulling image "{image}": {error}')
        self._halt.wait(delay)

    def _run_once(self, t: Tracked, launch: Launch) -> Obj:
        """Start the container, report it running, wait for it; its terminated state."""
        run = Run(launch, dirs.pod_log_path(self.node.state_dir, self.namespace, self.pod_name))
        try:
            t.container_id, t.image_id = f"local://{self.uid[:8]}-{run.pid}", launch.image_id
            log.info(
                "%s: started %s, pid %d (restart %d)", self.name, t.name, run.pid, t.restart_count
            )
            self._running(t, run.started)
            code = run.wait(self._stopping, lambda: self.grace)
            if error := run.start_error():
                t.state = terminated_state(
                    128, error, run.started, t.container_id, reason="StartError"
                )
            else:
                message = run.termination_message(code, t.container.get("terminationMessagePolicy"))
                t.state = terminated_state(code, message, run.started, t.container_id)
            t.ready = False
            return t.state
        finally:
            run.cleanup()

    # --- status ----------------------------------------------------------------------------
    def _publish(
        self, phase: str | None = None, reason: str | None = None, message: str | None = None
    ) -> None:
        phase = phase or ("Running" if self.main_started else "Pending")
        self._patch(
            pod_status.document(
                self.pod,
                phase,
                self.init,
                self.main,
                initialized=self.initialized,
                reason=reason,
                message=message,
            )
        )

    def _running(self, t: Tracked, started_at: str) -> None:
        """Started, and (the main container) Ready at once: no readiness probes are run."""
        t.state, t.ready = {"running": {"startedAt": started_at}}, t is self.main
        self.main_started = self.main_started or t is self.main
        self._last_waiting = ""
        self._publish()

    def _waiting(self, t: Tracked, reason: str, message: str) -> None:
        if f"{t.name}:{reason}:{message}" != self._last_waiting:
            log.info("%s: %s waiting: %s: %s", self.name, t.name, reason, message)
            self._last_waiting = f"{t.name}:{reason}:{message}"
            t.state, t.ready = waiting_state(reason, message), False
            self._publish()

    def _finish(
        self, t: Tracked, state: Obj, reason: str | None = None, message: str | None = None
    ) -> None:
        """The terminal status: Succeeded if the main container exited 0, else Failed."""
        if self._shutdown:
            return
        self.ended = True
        t.state, t.ready, self.main.ready = state, False, False
        ok = t is self.main and state["terminated"]["exitCode"] == 0 and not reason
        self._publish("Succeeded" if ok else "Failed", reason, message)

    def _fail(
        self, message: str, reason: str, t: Tracked | None = None, state: Obj | None = None
    ) -> None:
        """Fail the pod, with reason and message on the pod; state is t's last (t: the main
        container unless given)."""
        log.warning("%s: failed: %s: %s", self.name, reason, message)
        t = t or self.main
        if state is None:
            state = terminated_state(
                128, message, pod_status.now(), t.container_id, reason="StartError"
            )
        self._finish(t, state, reason, message)

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
