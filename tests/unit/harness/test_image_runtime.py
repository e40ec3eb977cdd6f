"""How the node runner turns an image and a pod into a process: paths resolved inside the image,
the user, the command and environment merged as a runtime merges them, and the sandbox's argv."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.node.env import image_command, image_env
from harness.node.identity import Identity, identity
from harness.node.image_sandbox import BWRAP, RUNAS, ImageBox, image_argv
from harness.node.refs import ConfigError
from harness.node.rootpath import resolve
from harness.node.sandbox import Mount

Obj = dict[str, Any]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A tiny image root: /var/run -> /run, a relative link, passwd and group."""
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to("/run")
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "lib").symlink_to("usr/lib")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
    )
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nextra:x:1002:app,other\n")
    return tmp_path


def pod(pod_ctx: Obj | None = None) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
        "spec": {"securityContext": pod_ctx or {}},
    }


def test_symlinks_resolve_inside_the_root_not_the_host(root: Path) -> None:
    assert resolve(root, "/var/run/secrets/token") == "/run/secrets/token"
    assert resolve(root, "/lib/x") == "/usr/lib/x"
    assert resolve(root, "/missing/../run/./a") == "/run/a"


def test_user_from_the_image_by_name_with_its_groups(root: Path) -> None:
    ident = identity(pod(), {"name": "c"}, "app", root)
    assert (ident.uid, ident.gid, ident.groups, ident.home) == (
        1000,
        1001,
        (1001, 1002),
        "/home/app",
    )


def test_pod_settings_override_the_image(root: Path) -> None:
    ctx = {"runAsUser": 5, "runAsGroup": 6, "fsGroup": 7, "supplementalGroups": [8]}
    container = {
        "name": "c",
        "securityContext": {"runAsUser": 9, "allowPrivilegeEscalation": False},
    }
    ident = identity(pod(ctx), container, "app:app", root)
    assert (ident.uid, ident.gid, ident.groups, ident.no_new_privs) == (9, 6, (6, 7, 8), True)


def test_run_as_non_root_is_checked(root: Path) -> None:
    with pytest.raises(ConfigError, match="image will run as root"):
        identity(pod({"runAsNonRoot": True}), {"name": "c"}, "", root)
    with pytest.raises(ConfigError, match="non-numeric user"):
        identity(pod({"runAsNonRoot": True}), {"name": "c"}, "app", root)
    assert identity(pod({"runAsNonRoot": True}), {"name": "c"}, "65532:65532", root).uid == 65532


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({}, ["ep", "cmd"]),
        ({"args": ["a-$(X)"]}, ["ep", "a-1"]),
        ({"command": ["c"]}, ["c"]),
        ({"command": ["c"], "args": ["$(X)"]}, ["c", "1"]),
    ],
)
def test_command_and_args_merge_with_entrypoint_and_cmd(
    container: Obj, expected: list[str]
) -> None:
    config = {"Entrypoint": ["ep"], "Cmd": ["cmd"]}
    assert image_command(container, {"X": "1"}, config) == expected


def test_pod_variables_override_the_images() -> None:
    env = image_env({"Env": ["PATH=/img", "A=image", "B=image"]}, {"A": "pod"}, "h", "/home")
    assert env == {"PATH": "/img", "A": "pod", "B": "image", "HOSTNAME": "h", "HOME": "/home"}


def test_sandbox_argv(root: Path, tmp_path: Path) -> None:
    box = ImageBox(
        rootfs=root,
        layer=tmp_path / "layer",
        mounts=[
            Mount(tmp_path / "tok", "/var/run/secrets/sa", read_only=True),
            Mount(tmp_path / "tmp", "/tmp"),
        ],
        workdir="/work",
        hostname="pod-1",
        env={"A": "1"},
        identity=Identity(65532, 65532, (65532,), True, "/"),
        read_only=True,
        runas=tmp_path / "runas",
    )
    argv, _ = image_argv(box, ["kubemigrate", "--version"], report_fd=7)
    assert argv[argv.index("--bind") + 1 : argv.index("--bind") + 3] == [
        str(tmp_path / "layer" / "merged"),
        "/",
    ]
    tmp, sa = argv.index(str(tmp_path / "tmp")), argv.index(str(tmp_path / "tok"))
    assert tmp < sa  # shallower targets first
    assert argv[sa - 5 : sa + 2] == [
        "--dir",
        "/run",
        "--dir",
        "/run/secrets",
        "--ro-bind",
        str(tmp_path / "tok"),
        "/run/secrets/sa",
    ]
    assert argv.index("--remount-ro") > sa  # after every mount point is made
    end = argv.index("--", argv.index("--clearenv"))
    assert argv[end + 1 :] == [
        RUNAS,
        "-uid",
        "65532",
        "-gid",
        "65532",
        "-groups",
        "65532",
        "-no-new-privs",
        "-report-fd",
        "7",
        "--",
        "kubemigrate",
        "--version",
    ]
    clear = argv.index("--clearenv")
    assert argv[clear + 1 : clear + 4] == ["--setenv", "A", "1"]


def test_bubblewraps_options_and_the_environment_leave_the_command_line(
    root: Path, tmp_path: Path
) -> None:
    box = ImageBox(
        rootfs=root,
        layer=tmp_path / "layer",
        mounts=[],
        workdir="/",
        hostname="p",
        env={"PASSWORD": "s3cret"},
        identity=Identity(1, 1, (1,), False, "/"),
        read_only=False,
        runas=tmp_path / "runas",
    )
    full, nothing = image_argv(box, ["cmd", "--"])
    argv, options = image_argv(box, ["cmd", "--"], args_fd=9)
    assert nothing == b"" and "s3cret" in full and "s3cret" not in argv
    at = argv.index(BWRAP) + 1
    assert argv[at : at + 2] == ["--args", "9"]
    hidden = [o.decode() for o in options.split(b"\0")[:-1]]
    assert full == [*argv[:at], *hidden, *argv[at + 2 :]]
