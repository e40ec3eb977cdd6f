"""The local node runner really runs pods: the real Job and Deployment controllers drive them.

Each pod's processes carry a unique KM_TEST_MARKER variable, so a test can see them on the host
(and see them gone). These pods run as host processes (the `kubemigrate.dev/node-runner: host`
annotation: their images are placeholders), which shows the kubelet's part on its own;
test_images.py runs pods from the project's image.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.kube import Cluster, Kubectl, wait_for
from harness.node.dirs import pod_log_path

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
HOST = {"kubemigrate.dev/node-runner": "host"}


@pytest.fixture
def node_dir(cluster: Cluster) -> Path:
    """The node runner's state directory; these tests need the local stack."""
    if not cluster.local or cluster.state_dir is None:
        pytest.skip("needs the local stack's node runner")
    return cluster.state_dir / "node"


def container(command: list[str], **extra: Any) -> Obj:
    return {"name": "main", "image": "ignored", "command": command, **extra}


def pod_template(
    command: list[str], restart: str = "Never", pod: Obj | None = None, **extra: Any
) -> Obj:
    return {
        "metadata": {"annotations": HOST},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 5,
            "containers": [container(command, **extra)],
            **(pod or {}),
        },
    }


def job(
    name: str,
    command: list[str],
    *,
    backoff_limit: int = 0,
    job_spec: Obj | None = None,
    **template: Any,
) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": backoff_limit,
                **(job_spec or {}),
                "template": pod_template(command, **template),
            },
        }
    )


def marker_env(marker: str) -> list[Obj]:
    return [{"name": "KM_TEST_MARKER", "value": marker}]


def processes_with(marker: str) -> list[int]:
    """Host pids whose environment holds KM_TEST_MARKER=marker."""
    needle = f"KM_TEST_MARKER={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                pids.append(int(entry.name))
    return pids


def wait_job(kubectl: Kubectl, ns: str, name: str, condition: str, timeout: int = 60) -> Obj:
    kubectl.run(
        "wait",
        "-n",
        ns,
        f"--for=condition={condition}",
        f"job/{name}",
        f"--timeout={timeout}s",
        timeout=timeout + 10,
    )
    obj: Obj = kubectl.json("get", "-n", ns, "job", name)
    return obj


def job_pods(kubectl: Kubectl, ns: str, name: str) -> list[Obj]:
    pods: list[Obj] = kubectl.json("get", "pods", "-n", ns, "-l", f"job-name={name}")["items"]
    return pods


def condition(obj: Obj, kind: str) -> Obj:
    return next(c for c in obj["status"].get("conditions") or [] if c["type"] == kind)


def terminated(pod: Obj) -> Obj:
    state: Obj = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_job_that_exits_0_completes(kubectl: Kubectl, namespace: str, node_dir: Path) -> None:
    kubectl.apply(job("ok", ["sh", "-c", "echo ok"]), "-n", namespace)
    done = wait_job(kubectl, namespace, "ok", "Complete")
    assert done["status"]["succeeded"] == 1
    [pod] = job_pods(kubectl, namespace, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated(pod)["exitCode"] == 0
    assert terminated(pod)["reason"] == "Completed"


def test_failing_job_is_retried_then_fails(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    kubectl.apply(
        job("bad", ["sh", "-c", "echo failing; exit 1"], backoff_limit=1), "-n", namespace
    )
    failed = wait_job(kubectl, namespace, "bad", "Failed", timeout=90)
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    pods = job_pods(kubectl, namespace, "bad")
    assert len(pods) == 2
    assert {p["status"]["phase"] for p in pods} == {"Failed"}
    assert {terminated(p)["exitCode"] for p in pods} == {1}


def test_secret_reaches_env_and_message_reaches_status(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex[:6]}"
    kubectl.run(
        "create", "secret", "generic", "creds", "-n", namespace, f"--from-literal=password={secret}"
    )
    env = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}
    ]
    kubectl.apply(
        job("msg", ["sh", "-c", 'printf "got %s" "$PASSWORD" > /dev/termination-log'], env=env),
        "-n",
        namespace,
    )
    wait_job(kubectl, namespace, "msg", "Complete")
    [pod] = job_pods(kubectl, namespace, "msg")
    assert terminated(pod)["message"] == f"got {secret}"
    assert not Path("/dev/termination-log").exists()


def test_missing_secret_keeps_pod_waiting_until_it_exists(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    kubectl.apply(job("patient", ["sh", "-c", 'test "$TOKEN" = ok'], env=env), "-n", namespace)

    def waiting_reason() -> str | None:
        pods = job_pods(kubectl, namespace, "patient")
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        return statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None

    wait_for(
        lambda: waiting_reason() == "CreateContainerConfigError",
        timeout=30,
        what="the pod to wait for its Secret",
    )
    kubectl.run("create", "secret", "generic", "later", "-n", namespace, "--from-literal=token=ok")
    wait_job(kubectl, namespace, "patient", "Complete")


def test_fallback_to_logs_on_error(kubectl: Kubectl, namespace: str, node_dir: Path) -> None:
    kubectl.apply(
        job(
            "boom",
            ["sh", "-c", "echo first; echo last words; exit 3"],
            terminationMessagePolicy="FallbackToLogsOnError",
        ),
        "-n",
        namespace,
    )
    wait_job(kubectl, namespace, "boom", "Failed")
    [pod] = job_pods(kubectl, namespace, "boom")
    assert terminated(pod)["exitCode"] == 3
    assert terminated(pod)["message"] == "first\nlast words\n"


def test_volumes_appear_at_their_paths(kubectl: Kubectl, namespace: str, node_dir: Path) -> None:
    kubectl.run(
        "create",
        "secret",
        "generic",
        "tls",
        "-n",
        namespace,
        "--from-literal=key=k3y",
        "--from-literal=unused=x",
    )
    kubectl.run("create", "configmap", "conf", "-n", namespace, "--from-literal=app.ini=a=1")
    volumes = [
        {
            "name": "creds",
            "secret": {
                "secretName": "tls",
                "defaultMode": 0o400,
                "items": [{"key": "key", "path": "private/key.pem"}],
            },
        },
        {"name": "conf", "configMap": {"name": "conf"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    mounts = [
        {"name": "creds", "mountPath": "/etc/kubemigrate-test/creds"},
        {"name": "conf", "mountPath": "/config/app.ini", "subPath": "app.ini"},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    script = (
        "cat /etc/kubemigrate-test/creds/private/key.pem; echo;"
        " stat -c %a /etc/kubemigrate-test/creds/private/key.pem;"
        " ls /etc/kubemigrate-test/creds; cat /config/app.ini; echo;"
        " touch /scratch/ok && echo scratch-ok;"
        " touch /etc/kubemigrate-test/creds/x 2>/dev/null || echo read-only"
    )
    kubectl.apply(
        job("vols", ["sh", "-c", script], pod={"volumes": volumes}, volumeMounts=mounts),
        "-n",
        namespace,
    )
    wait_job(kubectl, namespace, "vols", "Complete")
    [pod] = job_pods(kubectl, namespace, "vols")
    out = pod_log_path(node_dir, namespace, pod["metadata"]["name"]).read_text()
    assert out.splitlines() == ["k3y", "400", "private", "a=1", "scratch-ok", "read-only"]
    assert not Path("/etc/kubemigrate-test").exists()
    assert not Path("/config").exists()


def test_env_sources_expansion_and_working_dir(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    kubectl.run(
        "create",
        "configmap",
        "settings",
        "-n",
        namespace,
        "--from-literal=MODE=fast",
        "--from-literal=LEVEL=3",
    )
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING", "value": "hi-$(POD)-$(MODE)-$$(POD)"},
    ]
    script = 'printf "%s|%s|%s|%s\\n" "$0" "$GREETING" "$LEVEL" "$(pwd)"'
    kubectl.apply(
        job(
            "env",
            ["sh", "-c", script, "$(MODE)"],
            env=env,
            envFrom=[{"configMapRef": {"name": "settings"}}],
            workingDir="/work-dir/sub",
        ),
        "-n",
        namespace,
    )
    wait_job(kubectl, namespace, "env", "Complete")
    [pod] = job_pods(kubectl, namespace, "env")
    name = pod["metadata"]["name"]
    out = pod_log_path(node_dir, namespace, name).read_text()
    assert out == f"fast|hi-{name}-fast-$(POD)|3|/work-dir/sub\n"
    assert not Path("/work-dir").exists()


def test_pvc_written_by_one_job_is_read_by_the_next(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    kubectl.apply(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "backups"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Mi"}},
                },
            }
        ),
        "-n",
        namespace,
    )
    volume = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "backups"}}]}
    mounts = [{"name": "data", "mountPath": "/backups"}]
    payload = uuid.uuid4().hex
    kubectl.apply(
        job(
            "write",
            ["sh", "-c", f"echo {payload} > /backups/dump"],
            pod=volume,
            volumeMounts=mounts,
        ),
        "-n",
        namespace,
    )
    wait_job(kubectl, namespace, "write", "Complete")
    kubectl.apply(
        job(
            "read",
            ["sh", "-c", f'test "$(cat /backups/dump)" = {payload}'],
            pod=volume,
            volumeMounts=mounts,
        ),
        "-n",
        namespace,
    )
    wait_job(kubectl, namespace, "read", "Complete")
    assert not Path("/backups").exists()


def test_active_deadline_fails_job_and_kills_process(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    marker = uuid.uuid4().hex
    kubectl.apply(
        job("slow", ["sleep", "60"], job_spec={"activeDeadlineSeconds": 2}, env=marker_env(marker)),
        "-n",
        namespace,
    )
    wait_for(lambda: processes_with(marker), timeout=30, what="the job's process")
    failed = wait_job(kubectl, namespace, "slow", "Failed", timeout=30)
    assert condition(failed, "Failed")["reason"] == "DeadlineExceeded"
    wait_for(lambda: not processes_with(marker), timeout=10, what="the process to be killed")


def test_deleting_a_running_pod_kills_its_process(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    marker = uuid.uuid4().hex
    template = pod_template(["sh", "-c", "sleep 60; sleep 60"], env=marker_env(marker))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sleeper", **template["metadata"]},
        "spec": template["spec"],
    }
    kubectl.apply(json.dumps(pod), "-n", namespace)
    kubectl.run("wait", "-n", namespace, "--for=condition=Ready", "pod/sleeper", "--timeout=30s")
    assert processes_with(marker)
    kubectl.run("delete", "pod", "sleeper", "-n", namespace, "--wait=false")
    wait_for(lambda: not processes_with(marker), timeout=10, what="the process to be killed")


def test_pod_log_file_holds_its_output(kubectl: Kubectl, namespace: str, node_dir: Path) -> None:
    kubectl.apply(job("talk", ["sh", "-c", "echo to-stdout; echo to-stderr >&2"]), "-n", namespace)
    wait_job(kubectl, namespace, "talk", "Complete")
    [pod] = job_pods(kubectl, namespace, "talk")
    log = pod_log_path(node_dir, namespace, pod["metadata"]["name"]).read_text()
    assert log.splitlines() == ["to-stdout", "to-stderr"]


def test_service_account_token_authenticates_in_cluster(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    kubectl.apply(
        job("whoami", ["kubectl", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]),
        "-n",
        namespace,
    )
    wait_job(kubectl, namespace, "whoami", "Complete")
    [pod] = job_pods(kubectl, namespace, "whoami")
    out = pod_log_path(node_dir, namespace, pod["metadata"]["name"]).read_text()
    assert out == f"system:serviceaccount:{namespace}:default"
    assert not Path("/run/secrets/kubernetes.io").exists()


def test_pod_without_command_fails_clearly(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "imageonly", "annotations": HOST},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}]},
    }
    kubectl.apply(json.dumps(pod), "-n", namespace)
    kubectl.run(
        "wait",
        "-n",
        namespace,
        "--for=jsonpath={.status.phase}=Failed",
        "pod/imageonly",
        "--timeout=30s",
    )
    status = kubectl.json("get", "pod", "imageonly", "-n", namespace)["status"]
    assert "has no command" in status["message"]


def test_on_failure_restarts_in_place_until_backoff_limit(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    # The Job controller fails the Job once the pod's restartCount reaches backoffLimit.
    kubectl.apply(
        job("flaky", ["sh", "-c", "echo try; exit 2"], backoff_limit=2, restart="OnFailure"),
        "-n",
        namespace,
    )
    failed = wait_job(kubectl, namespace, "flaky", "Failed", timeout=60)
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    # The Job controller deletes the pod it gave up on; its log file stays.
    [log] = pod_log_path(node_dir, namespace, "flaky-*").parent.glob(f"{namespace}_flaky-*.log")
    assert log.read_text().count("try") >= 2


def test_deployment_pod_becomes_ready_and_restarts(
    kubectl: Kubectl, namespace: str, node_dir: Path
) -> None:
    labels = {"app": "web"}
    template = pod_template(["sleep", "3600"], restart="Always")
    template["metadata"]["labels"] = labels
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }
    kubectl.apply(json.dumps(deploy), "-n", namespace)
    kubectl.run("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")
    [pod] = kubectl.json("get", "pods", "-n", namespace, "-l", "app=web")["items"]
    assert condition(pod, "Ready")["status"] == "True"
    assert pod["status"]["containerStatuses"][0]["ready"] is True

    crash_template = pod_template(["sh", "-c", "exit 3"], restart="Always")
    crash = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "crasher", **crash_template["metadata"]},
        "spec": crash_template["spec"],
    }
    kubectl.apply(json.dumps(crash), "-n", namespace)

    def restarts() -> int:
        pod = kubectl.json("get", "pod", "crasher", "-n", namespace)
        statuses = pod["status"].get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount") or 0)

    wait_for(lambda: restarts() >= 2, timeout=30, what="two restarts in place")
    pod = kubectl.json("get", "pod", "crasher", "-n", namespace)
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 3
