"""Who a container's process runs as, decided the way a kubelet and its runtime decide it.

The user is securityContext.runAsUser (the container's, else the pod's), else the image's USER; a
user name is looked up in the image's /etc/passwd. The group is runAsGroup, else the group of
USER `u:g`, else the user's group in /etc/passwd, else 0. Supplementary groups: the user's groups
in /etc/group, the pod's fsGroup and supplementalGroups. runAsNonRoot is checked as the kubelet
checks it; allowPrivilegeEscalation: false sets no_new_privs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.node.refs import ConfigError, Obj
from harness.node.rootpath import host_path


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...]
    no_new_privs: bool
    home: str  # the user's home in /etc/passwd, for a HOME the image and pod do not set


@dataclass(frozen=True)
class _Entry:
    name: str
    uid: int
    gid: int
    home: str


def _passwd(root: Path) -> list[_Entry]:
    try:
        lines = host_path(root, "/etc/passwd").read_text(errors="replace").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        f = line.split(":")
        if len(f) >= 7 and f[2].isdigit() and f[3].isdigit():
            entries.append(_Entry(f[0], int(f[2]), int(f[3]), f[5]))
    return entries


def _groups(root: Path) -> list[tuple[str, int, list[str]]]:
    """(name, gid, members) of each /etc/group line."""
    try:
        lines = host_path(root, "/etc/group").read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [
        (f[0], int(f[2]), [m for m in f[3].split(",") if m])
        for f in (line.split(":") for line in lines)
        if len(f) >= 4 and f[2].isdigit()
    ]


def _numeric_or(value: str, table: dict[str, int], what: str) -> int:
    if value.isdigit():
        return int(value)
    if value in table:
        return table[value]
    raise ConfigError(f"unable to find {what} {value}: no matching entries in {what} file")


def security_context(pod: Obj, container: Obj) -> Obj:
    """The pod's securityContext overridden by the container's, field by field."""
    pod_ctx = pod["spec"].get("securityContext") or {}
    return {**pod_ctx, **(container.get("securityContext") or {})}


def _check_non_root(ctx: Obj, uid: int, image_user: str, pod: Obj, container: Obj) -> None:
    if not ctx.get("runAsNonRoot"):
        return
    meta = pod["metadata"]
    where = (
        f'(pod: "{meta["name"]}_{meta["namespace"]}({meta["uid"]})", '
        f"container: {container['name']})"
    )
    user = image_user.partition(":")[0]
    if "runAsUser" not in ctx and user and not user.isdigit():
        raise ConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({user}), "
            f"cannot verify user is non-root {where}"
        )
    if uid == 0:
        raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")


def identity(pod: Obj, container: Obj, image_user: str, root: Path) -> Identity:
    """The uid, gids and privileges of the container's process."""
    ctx = security_context(pod, container)
    users = _passwd(root)
    user_part, _, group_part = (image_user or "").partition(":")
    if "runAsUser" in ctx:
        uid = int(ctx["runAsUser"])
    else:
        uid = _numeric_or(user_part or "0", {u.name: u.uid for u in users}, "user")
    _check_non_root(ctx, uid, image_user, pod, container)
    entry = next((u for u in users if u.uid == uid), None)
    groups = _groups(root)
    if "runAsGroup" in ctx:
        gid = int(ctx["runAsGroup"])
    elif group_part and "runAsUser" not in ctx:
        gid = _numeric_or(group_part, {g[0]: g[1] for g in groups}, "group")
    else:
        gid = entry.gid if entry else 0
    extra = {g[1] for g in groups if entry and entry.name in g[2]}
    pod_ctx = pod["spec"].get("securityContext") or {}
    extra |= {int(g) for g in pod_ctx.get("supplementalGroups") or []}
    if pod_ctx.get("fsGroup") is not None:
        extra.add(int(pod_ctx["fsGroup"]))
    return Identity(
        uid,
        gid,
        tuple(sorted({gid} | extra)),
        no_new_privs=ctx.get("allowPrivilegeEscalation") is False,
        home=entry.home if entry else "/",
    )
