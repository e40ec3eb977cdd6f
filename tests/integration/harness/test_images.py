"""The node runner runs pods from their images: the image's files as the root, its user, command
and environment merged with the pod's, read-only roots, init containers, and the kubelet's pull
errors. The image is the project's own (localhost/kubemigrate:dev, `make image`).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.image.store import LocalImage
from harness.kube import Cluster, Kubectl, wait_for
from harness.node.dirs import pod_log_path, pvc_dir
from harness.node.rootfs import rootfs
from harness.paths import REPO

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


@pytest.fixture
def node_dir(cluster: Cluster) -> Path:
    """The node runner's state directory; these tests need the local stack."""
    if not cluster.local or cluster.state_dir is None:
        pytest.skip("needs the local stack's node runner")
    return cluster.state_dir / "node"


def run_pod(kubectl: Kubectl, ns: str, name: str, spec: Obj, phase: str = "Succeeded") -> Obj:
    """Create a pod (restartPolicy Never) and wait for phase; the pod."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, **spec},
    }
    kubectl.apply(json.dumps(pod), "-n", ns)
    kubectl.run(
        "wait",
        "-n",
        ns,
        f"--for=jsonpath={{.status.phase}}={phase}",
        f"pod/{name}",
        "--timeout=90s",
        timeout=100,
    )
    got: Obj = kubectl.json("get", "pod", name, "-n", ns)
    return got


def main(image: str, script: str, **extra: Any) -> Obj:
    return {"name": "main", "image": image, "command": ["sh", "-c", script], **extra}


def output(node_dir: Path, ns: str, pod: str) -> list[str]:
    return pod_log_path(node_dir, ns, pod).read_text().splitlines()


def terminated(status: Obj) -> Obj:
    state: Obj = status["state"]["terminated"]
    return state


def test_the_image_holds_the_cli_and_postgres_client(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    script = "kubemigrate --version; pg_dump --version; pg_restore --version; psql --version; id -u"
    pod = run_pod(kubectl, namespace, "tools", {"containers": [main(dev_image.name, script)]})
    lines = output(node_dir, namespace, "tools")
    assert lines[0].startswith("kubemigrate ")
    assert [line.split(" (PostgreSQL) ")[1].split(".")[0] for line in lines[1:4]] == ["15"] * 3
    assert lines[4] == "65532"  # the image's USER
    [status] = pod["status"]["containerStatuses"]
    assert status["imageID"] == dev_image.image_id == f"localhost/kubemigrate@{dev_image.digest}"


def test_args_alone_replace_the_images_cmd(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    container = {"name": "main", "image": "kubemigrate:dev", "args": ["sh", "-c", "pwd; env"]}
    run_pod(kubectl, namespace, "args", {"containers": [container]})
    lines = output(node_dir, namespace, "args")
    assert lines[0] == dev_image.config["WorkingDir"] == "/tmp"
    assert "HOME=/tmp" in lines and "PG_MAJOR=15" in lines and "HOSTNAME=args" in lines


def test_read_only_root_refuses_writes_outside_volumes(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    read_only = {"readOnlyRootFilesystem": True}
    writes_tmp = main(
        dev_image.name,
        "echo x > /tmp/file && cat /tmp/file",
        securityContext=read_only,
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    run_pod(
        kubectl,
        namespace,
        "volume-ok",
        {"containers": [writes_tmp], "volumes": [{"name": "tmp", "emptyDir": {}}]},
    )
    assert output(node_dir, namespace, "volume-ok") == ["x"]

    outside = main(dev_image.name, "echo x > /tmp/file", securityContext=read_only)
    pod = run_pod(kubectl, namespace, "outside", {"containers": [outside]}, phase="Failed")
    assert terminated(pod["status"]["containerStatuses"][0])["exitCode"] != 0
    assert "Read-only file system" in "\n".join(output(node_dir, namespace, "outside"))

    # Without readOnlyRootFilesystem the write lands in the container's own layer only.
    writable = main(
        dev_image.name,
        "echo x > /opt/kubemigrate/new && cat /opt/kubemigrate/new",
        securityContext={"runAsUser": 0},
    )
    run_pod(kubectl, namespace, "writable", {"containers": [writable]})
    assert output(node_dir, namespace, "writable") == ["x"]
    run_pod(
        kubectl,
        namespace,
        "fresh",
        {"containers": [main(dev_image.name, "test ! -e /opt/kubemigrate/new")]},
    )


def test_run_as_user_group_and_fs_group(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    kubectl.apply(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Mi"}},
                },
            }
        ),
        "-n",
        namespace,
    )
    script = "id -u; id -g; id -G; grep ^Uid: /proc/self/status; touch /data/mine /dev/shm/ok"
    container = main(
        dev_image.name,
        script,
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        securityContext={"allowPrivilegeEscalation": False},
    )
    run_pod(
        kubectl,
        namespace,
        "who",
        {
            "securityContext": {
                "runAsUser": 4242,
                "runAsGroup": 4343,
                "fsGroup": 4444,
                "supplementalGroups": [4545],
                "runAsNonRoot": True,
            },
            "containers": [container],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    )
    uid, gid, groups, proc_uid = output(node_dir, namespace, "who")
    assert (uid, gid) == ("4242", "4343")
    assert set(groups.split()) == {"4343", "4444", "4545"}
    assert proc_uid.split()[1:] == ["4242"] * 4  # real, effective, saved, filesystem
    written = pvc_dir(node_dir, namespace, "data") / "mine"
    assert (written.stat().st_uid, written.stat().st_gid) == (4242, 4444)  # set-gid claim


def test_run_as_non_root_refuses_root(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    container = main(dev_image.name, "true", securityContext={"runAsUser": 0, "runAsNonRoot": True})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }
    kubectl.apply(json.dumps(pod), "-n", namespace)

    def waiting() -> Obj:
        got = kubectl.json("get", "pod", "root", "-n", namespace)["status"]
        statuses = got.get("containerStatuses") or [{}]
        state: Obj = (statuses[0].get("state") or {}).get("waiting") or {}
        return state

    wait_for(
        lambda: waiting().get("reason") == "CreateContainerConfigError",
        timeout=30,
        what="the pod to be refused",
    )
    assert "runAsNonRoot and image will run as root" in waiting()["message"]


def test_init_containers_run_first_and_share_an_empty_dir(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    shared = [{"name": "shared", "mountPath": "/shared"}]
    inits = [
        main(dev_image.name, "echo one > /shared/steps", volumeMounts=shared),
        main(dev_image.name, "echo two >> /shared/steps", volumeMounts=shared),
    ]
    inits[0]["name"], inits[1]["name"] = "first", "second"
    pod = run_pod(
        kubectl,
        namespace,
        "init",
        {
            "initContainers": inits,
            "containers": [main(dev_image.name, "cat /shared/steps", volumeMounts=shared)],
            "volumes": [{"name": "shared", "emptyDir": {}}],
        },
    )
    assert output(node_dir, namespace, "init") == ["one", "two"]
    statuses = pod["status"]["initContainerStatuses"]
    assert [(s["name"], terminated(s)["reason"]) for s in statuses] == [
        ("first", "Completed"),
        ("second", "Completed"),
    ]
    assert all(s["imageID"] == dev_image.image_id for s in statuses)


def test_a_failed_init_container_fails_the_pod_before_its_containers_run(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    init = main(dev_image.name, "echo no; exit 4")
    init["name"] = "prepare"
    pod = run_pod(
        kubectl,
        namespace,
        "init-fails",
        {"initContainers": [init], "containers": [main(dev_image.name, "echo never")]},
        phase="Failed",
    )
    [init_status] = pod["status"]["initContainerStatuses"]
    assert terminated(init_status)["exitCode"] == 4
    [status] = pod["status"]["containerStatuses"]
    assert status["state"]["waiting"]["reason"] == "PodInitializing"
    assert output(node_dir, namespace, "init-fails") == ["no"]
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False"


def test_a_missing_image_fails_to_pull(kubectl: Kubectl, namespace: str, node_dir: Path) -> None:
    image = "localhost/kubemigrate:no-such-tag"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nopull"},
        "spec": {"restartPolicy": "Never", "containers": [main(image, "true")]},
    }
    kubectl.apply(json.dumps(pod), "-n", namespace)

    def waiting() -> Obj:
        got = kubectl.json("get", "pod", "nopull", "-n", namespace)["status"]
        assert got["phase"] == "Pending"
        state: Obj = (got.get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {})
        return state

    wait_for(
        lambda: waiting().get("reason") in ("ErrImagePull", "ImagePullBackOff"),
        timeout=30,
        what="a pull error",
    )
    assert f'failed to pull image "{image}"' in waiting()["message"]
    assert not pod_log_path(node_dir, namespace, "nopull").exists()  # nothing ran on the host


def test_a_command_missing_from_the_image_is_a_start_error(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    container = {"name": "main", "image": dev_image.name, "command": ["no-such-command"]}
    pod = run_pod(kubectl, namespace, "nocmd", {"containers": [container]}, phase="Failed")
    state = terminated(pod["status"]["containerStatuses"][0])
    assert (state["reason"], state["exitCode"]) == ("StartError", 128)
    assert state["message"] == 'exec: "no-such-command": executable file not found in $PATH'


def test_the_image_holds_the_checkouts_code(dev_image: LocalImage) -> None:
    """The build's layer cache never serves code older than the checkout's."""
    root = rootfs(dev_image)
    [site] = (root / "opt/kubemigrate/lib").glob("python3*/site-packages")
    package = REPO / "operator" / "kubemigrate"
    sources = sorted(p.relative_to(package) for p in package.rglob("*.py"))
    assert sources
    differing = [
        str(p)
        for p in sources
        if (site / "kubemigrate" / p).read_bytes() != (package / p).read_bytes()
    ]
    assert not differing, f"the image's code is not the checkout's: {differing}"


def test_secrets_in_the_environment_stay_off_the_hosts_process_list(
    kubectl: Kubectl, namespace: str, node_dir: Path, dev_image: LocalImage
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    kubectl.run(
        "create", "secret", "generic", "creds", "-n", namespace, f"--from-literal=password={secret}"
    )
    env = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "holder"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [main(dev_image.name, "sleep 60", env=env)],
        },
    }
    kubectl.apply(json.dumps(pod), "-n", namespace)
    kubectl.run("wait", "-n", namespace, "--for=condition=Ready", "pod/holder", "--timeout=60s")
    needle = secret.encode()

    def holding(name: str) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and needle in (entry / name).read_bytes():
                    found.append(int(entry.name))
        return found

    wait_for(lambda: holding("environ"), timeout=10, what="the container's environment")
    assert not holding("cmdline")
    kubectl.run("delete", "pod", "holder", "-n", namespace, "--wait=false")
