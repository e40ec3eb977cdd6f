"""What starting one container takes: the argv and environment of its sandbox.

A pod runs from its containers' images (image_sandbox) unless it carries the annotation
`kubemigrate.dev/node-runner: host`: a test's explicit choice to run its commands as host
processes (sandbox), with the image ignored. An image is looked up in local storage only; one
that is not there (or whose pull policy is Always: there is no registry) fails to pull, as on a
kubelet without registry access.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kubernetes

from harness.image import store
from harness.node import dirs
from harness.node.env import (
    container_argv,
    container_env,
    image_command,
    image_env,
    service_env,
)
from harness.node.identity import identity, security_context
from harness.node.image_sandbox import HOST_PATH, ImageBox, image_argv, make_layer
from harness.node.refs import POD_IP, Obj, PodError, Refs
from harness.node.rootfs import rootfs
from harness.node.sandbox import Mount, bwrap_argv
from harness.node.volumes import container_mounts

NODE_ANNOTATION = "kubemigrate.dev/node-runner"  # "host": run as host processes; "skip": don't
TERMINATION_PATH = "/dev/termination-log"
HOSTS = """# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
{ip}\t{hostname}
"""


@dataclass(frozen=True)
class Node:
    """What every pod worker needs from the runner."""

    core: kubernetes.client.CoreV1Api
    state_dir: Path
    path: str  # PATH for host-process containers that do not set one
    api_port: int
    runas: Path | None  # the runas helper (harness/cluster/cmd/runas), for image containers


class ImagePullError(Exception):
    """The container's image cannot be had: retried with back-off, as a kubelet retries pulls."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StartError(PodError):
    """The container's command cannot be started: a runtime's StartError."""


@dataclass(frozen=True)
class Launch:
    """One container start, ready to run."""

    # (fd runas reports start failures on, fd for bubblewrap's options; -1: none) -> the argv,
    # and what to write to the second fd
    argv: Callable[[int, int], tuple[list[str], bytes]]
    env: dict[str, str]
    termination: Path  # the host file bound at terminationMessagePath
    image_id: str = ""
    layer: Path | None = None  # the writable layer, removed after the run
    reports: bool = False  # whether argv takes a report fd
    hides_args: bool = False  # whether bubblewrap's options go on an fd (image_sandbox)


def host_mode(pod: Obj) -> bool:
    return (pod["metadata"].get("annotations") or {}).get(NODE_ANNOTATION) == "host"


def hostname(pod: Obj) -> str:
    name: str = pod["spec"].get("hostname") or pod["metadata"]["name"]
    return name


def pull(container: Obj) -> store.LocalImage:
    """The container's image from local storage, or the kubelet's pull error."""
    ref = container.get("image") or ""
    policy = container.get("imagePullPolicy") or "IfNotPresent"
    if policy == "Always":
        raise ImagePullError(
            "ErrImagePull",
            f'failed to pull image "{ref}": the pull policy is '
            "Always and the local node pulls from no registry (use "
            "IfNotPresent or Never for images built locally)",
        )
    image = store.inspect(ref)
    if image is not None:
        return image
    if policy == "Never":
        raise ImagePullError(
            "ErrImageNeverPull", f'Container image "{ref}" is not present with pull policy of Never'
        )
    raise ImagePullError(
        "ErrImagePull",
        f'failed to pull image "{ref}": it is not in local '
        "image storage and the local node pulls from no registry (build it "
        "with buildah: make image)",
    )


def _etc_mounts(state_dir: Path, pod: Obj, name: str) -> list[Mount]:
    """/etc/hosts, /etc/hostname and /etc/resolv.conf, as the kubelet and runtime bind them."""
    etc = dirs.etc_dir(state_dir, pod["metadata"]["uid"])
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(HOSTS.format(ip=POD_IP, hostname=name))
    (etc / "hostname").write_text(name + "\n")
    resolv = Path("/etc/resolv.conf")
    (etc / "resolv.conf").write_bytes(resolv.read_bytes() if resolv.exists() else b"")
    return [Mount(etc / f, f"/etc/{f}") for f in ("hosts", "hostname", "resolv.conf")]


def host_launch(node: Node, pod: Obj, container: Obj) -> Launch:
    """A container as a host process (the annotated test pods): the image is ignored."""
    refs = Refs(node.core, pod)
    kube_env = container_env(container, refs, service_env(node.api_port))
    argv = container_argv(container, kube_env)
    mounts = container_mounts(pod, container, refs, node.state_dir, kube_env)
    name = hostname(pod)
    env = {"PATH": node.path, "HOME": "/root", "HOSTNAME": name, **kube_env}
    term = dirs.termination_log(node.state_dir, pod["metadata"]["uid"], container["name"])
    full = bwrap_argv(
        argv,
        mounts=mounts,
        termination_log=term,
        termination_path=container.get("terminationMessagePath") or TERMINATION_PATH,
        workdir=container.get("workingDir"),
        hostname=name,
    )
    if "/" not in argv[0] and not shutil.which(argv[0], path=env["PATH"]):
        raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
    return Launch(lambda _report, _args: (full, b""), env, term)


def image_launch(node: Node, pod: Obj, container: Obj) -> Launch:
    """A container from its image: its files, user, command and environment."""
    if node.runas is None or os.geteuid() != 0:
        raise PodError(
            "running containers from images needs the node runner as root, with "
            "--runas (harness/cluster/build.sh builds it)"
        )
    image = pull(container)
    root = rootfs(image)
    refs = Refs(node.core, pod)
    kube_env = container_env(container, refs, service_env(node.api_port))
    ident = identity(pod, container, image.config.get("User") or "", root)
    command = image_command(container, kube_env, image.config)
    if not command:
        raise StartError("no command specified: neither the container nor its image sets one")
    name, uid = hostname(pod), pod["metadata"]["uid"]
    term = dirs.termination_log(node.state_dir, uid, container["name"])
    mounts = [
        *_etc_mounts(node.state_dir, pod, name),
        *container_mounts(pod, container, refs, node.state_dir, kube_env),
        Mount(term, container.get("terminationMessagePath") or TERMINATION_PATH),
    ]
    layer = dirs.layer_dir(node.state_dir, uid, container["name"])
    shutil.rmtree(layer, ignore_errors=True)
    make_layer(layer)
    box = ImageBox(
        rootfs=root,
        layer=layer,
        mounts=mounts,
        hostname=name,
        identity=ident,
        workdir=container.get("workingDir") or image.config.get("WorkingDir") or "/",
        env=image_env(image.config, kube_env, name, ident.home),
        read_only=bool(security_context(pod, container).get("readOnlyRootFilesystem")),
        runas=node.runas,
    )
    return Launch(
        lambda report, args: image_argv(box, command, report, args),
        {"PATH": HOST_PATH},
        term,
        image_id=image.image_id,
        layer=layer,
        reports=True,
        hides_args=True,
    )


def prepare(node: Node, pod: Obj, container: Obj) -> Launch:
    """The next start of container, in the pod's mode."""
    if host_mode(pod):
        return host_launch(node, pod, container)
    return image_launch(node, pod, container)
