"""The local node: runs the pods nothing schedules, from their images, with no kubelet.

    python -m harness.node.runner --kubeconfig K --state-dir D --path PATH --runas RUNAS

It watches pods without `spec.nodeName` in all namespaces (leaving nodeName empty) and runs each
one's init containers and first container with bubblewrap (see pod, launch and the sandboxes),
reporting pods/status as a kubelet would, so the real Job, ReplicaSet and Deployment controllers
drive them. Every pod is run, whoever owns it, unless it has scheduling gates or the annotation
`kubemigrate.dev/node-runner: skip` (`host` runs it as host processes, ignoring its images).
A pod is run at most once per runner; a deleted pod's processes are killed. Pod output goes to
D/logs/<namespace>_<pod>.log (`dirs.pod_log_path`); the runner's own log goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from harness.node.launch import NODE_ANNOTATION, Node
from harness.node.pod import PodWorker
from harness.node.refs import Obj, read_json

__all__ = ["NodeRunner", "main"]

log = logging.getLogger("node-runner")

UNSCHEDULED = "spec.nodeName="
WATCH_SECONDS = 300
RETRY_SECONDS = 2.0


def wanted(pod: Obj) -> bool:
    """Whether the local node should run pod (it has not seen it before)."""
    meta, spec = pod["metadata"], pod["spec"]
    return not (
        meta.get("deletionTimestamp")
        or spec.get("nodeName")
        or spec.get("schedulingGates")
        or (meta.get("annotations") or {}).get(NODE_ANNOTATION) == "skip"
        or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    )


class NodeRunner:
    """Lists and watches unscheduled pods and keeps one PodWorker per running pod."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.workers: dict[str, PodWorker] = {}
        self.seen: set[str] = set()  # uids ever run: a stale event must not start one again
        self.stopping = threading.Event()
        self._lock = threading.Lock()  # workers: the watch thread adds, shutdown() stops
        self._response: Any = None

    def observe(self, kind: str, pod: Obj) -> None:
        """React to one watch event (or listed pod, as ADDED)."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self.workers.get(uid)
            if worker is not None:
                if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                    worker.stop()
                return
            if self.stopping.is_set() or kind == "DELETED" or uid in self.seen or not wanted(pod):
                return
            self.seen.add(uid)
            worker = PodWorker(self.node, pod)
            self.workers[uid] = worker
            log.info("%s: accepted (%s)", worker.name, _owner(pod))
            worker.start()

    def _safely(self, kind: str, pod: Obj) -> None:
        try:
            self.observe(kind, pod)
        except Exception:
            log.exception("handling %s event for pod %s", kind, pod.get("metadata", {}).get("name"))

    def _reap(self) -> None:
        with self._lock:
            for uid, worker in list(self.workers.items()):
                if not worker.is_alive():
                    del self.workers[uid]

    def _resync(self) -> str:
        """List unscheduled pods, stop workers of pods gone meanwhile; the list's version."""
        listed = read_json(
            self.node.core.list_pod_for_all_namespaces(
                field_selector=UNSCHEDULED, _preload_content=False, _request_timeout=30
            )
        )
        present = {p["metadata"]["uid"] for p in listed["items"]}
        with self._lock:
            for uid, worker in self.workers.items():
                if uid not in present:
                    worker.stop()
        for pod in listed["items"]:
            self._safely("ADDED", pod)
        version: str = listed["metadata"]["resourceVersion"]
        return version

    def _watch(self, version: str) -> None:
        """Follow events from version until the server ends the watch or it expires."""
        self._response = self.node.core.list_pod_for_all_namespaces(
            field_selector=UNSCHEDULED,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(10, WATCH_SECONDS + 30),
        )
        try:
            # kubernetes.watch is not annotated; the lines are str.
            for line in iter_resp_lines(self._response):  # type: ignore[no-untyped-call]
                if self.stopping.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    status = event["object"]
                    log.info("watch ended: %s %s", status.get("code"), status.get("message"))
                    return  # 410 Gone and friends: list again
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    self._safely(event["type"], event["object"])
                self._reap()
        finally:
            self._response.release_conn()

    def watch_forever(self) -> None:
        """List, then watch; on any end or error, list again (after a pause if it failed)."""
        while not self.stopping.is_set():
            try:
                self._watch(self._resync())
                self._reap()
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                if self.stopping.is_set():
                    return
                log.warning("watching pods failed (%s); retrying", e)
                self.stopping.wait(RETRY_SECONDS)
            except Exception:
                log.exception("watch loop error; retrying")
                self.stopping.wait(RETRY_SECONDS)

    def shutdown(self) -> None:
        """Kill every pod process (their status stays as it was) and wait for the workers."""
        with self._lock:
            self.stopping.set()
            workers = list(self.workers.values())
        for worker in workers:
            worker.stop(shutdown=True)
        deadline = time.monotonic() + 10
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


def _owner(pod: Obj) -> str:
    refs = pod["metadata"].get("ownerReferences") or []
    return ", ".join(f"{r['kind']}/{r['name']}" for r in refs) or "no owner"


def api_port(client: kubernetes.client.ApiClient) -> int:
    """The API server's port, from the kubeconfig's server URL."""
    url = urlsplit(client.configuration.host)
    return url.port or (443 if url.scheme == "https" else 80)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.node.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument(
        "--path",
        default=os.environ.get("PATH", "/usr/bin:/bin"),
        help="PATH for host-process containers that do not set one",
    )
    parser.add_argument(
        "--runas",
        type=Path,
        help="the runas helper (harness/cluster/build.sh), for image containers",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [%(threadName)s] %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    config = kubernetes.client.Configuration()
    # kubernetes.config is not annotated (unlike the client's API classes).
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(args.kubeconfig), client_configuration=config
    )
    config.connection_pool_maxsize = 32  # one watch plus pod workers patching status
    client = kubernetes.client.ApiClient(config)
    node = Node(
        kubernetes.client.CoreV1Api(client), state_dir, args.path, api_port(client), args.runas
    )
    runner = NodeRunner(node)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        runner.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("node runner up: state %s, API port %d", state_dir, node.api_port)
    threading.Thread(target=runner.watch_forever, name="watch", daemon=True).start()
    written = _mtime(args.kubeconfig)
    while not runner.stopping.wait(1.0):
        if _mtime(args.kubeconfig) not in (written, 0.0):
            break
    changed = not runner.stopping.is_set()
    runner.shutdown()
    if changed:
        # The control plane was restarted (on new ports): start over, same pid, same pid file.
        log.info("kubeconfig changed: restarting")
        sys.stdout.flush()
        rerun = [
            sys.executable,
            "-m",
            "harness.node.runner",
            *(sys.argv[1:] if argv is None else argv),
        ]
        os.execv(sys.executable, rerun)  # noqa: S606 - our own interpreter and module
    log.info("node runner stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
