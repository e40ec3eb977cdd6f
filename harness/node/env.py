"""A container's environment and argv, built the way the kubelet builds them.

Order and precedence follow the kubelet: envFrom sources in order, then `env` entries (whose
literal values may reference earlier variables and the service variables as `$(VAR)`), then the
service variables the container did not set; `command` and `args` are expanded against the result.
A container run from an image starts from the image's ENV and ENTRYPOINT/CMD (image_env,
image_command), as the runtime merges them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from harness.node.refs import Obj, PodError, Refs

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a runtime's


def expand(text: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` escapes, unknown or unclosed references stay as-is."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(" and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(mapping.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def service_env(api_port: int) -> dict[str, str]:
    """The `kubernetes` Service's variables, pointing in-cluster clients at the local API server."""
    url = f"tcp://127.0.0.1:{api_port}"
    return {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
        "KUBERNETES_PORT": url,
        f"KUBERNETES_PORT_{api_port}_TCP": url,
        f"KUBERNETES_PORT_{api_port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{api_port}_TCP_PORT": str(api_port),
        f"KUBERNETES_PORT_{api_port}_TCP_ADDR": "127.0.0.1",
    }


def _value_from(source: Obj, refs: Refs, container: str) -> str | None:
    if "secretKeyRef" in source:
        raw = refs.key("Secret", source["secretKeyRef"])
    elif "configMapKeyRef" in source:
        raw = refs.key("ConfigMap", source["configMapKeyRef"])
    elif "fieldRef" in source:
        return refs.field(source["fieldRef"]["fieldPath"])
    elif "resourceFieldRef" in source:
        return refs.resource(source["resourceFieldRef"], container)
    else:
        raise PodError(f"unsupported valueFrom {sorted(source)}")
    return None if raw is None else raw.decode(errors="replace")


def container_env(container: Obj, refs: Refs, services: Mapping[str, str]) -> dict[str, str]:
    """The variables Kubernetes gives the container (not the image's defaults: see pod)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = (
            ("Secret", source["secretRef"])
            if "secretRef" in source
            else ("ConfigMap", source["configMapRef"])
        )
        for key, value in refs.object_data(kind, ref["name"], ref.get("optional")).items():
            name = source.get("prefix", "") + key
            if _ENV_NAME.fullmatch(name):
                env[name] = value.decode(errors="replace")
    for var in container.get("env") or []:
        if "valueFrom" in var:
            resolved = _value_from(var["valueFrom"], refs, container["name"])
            if resolved is None:
                continue
            env[var["name"]] = resolved
        else:
            env[var["name"]] = expand(var.get("value", ""), {**services, **env})
    return {**services, **env}


def container_argv(container: Obj, env: Mapping[str, str]) -> list[str]:
    """command + args with `$(VAR)` expanded, for a pod run as host processes: the image is
    ignored, so command is required."""
    command: list[str] = container.get("command") or []
    if not command:
        raise PodError(
            f'container "{container["name"]}" has no command: a pod run as host processes '
            "ignores its image, so it must set the container's command explicitly"
        )
    args: list[str] = container.get("args") or []
    return [expand(a, env) for a in [*command, *args]]


def image_command(container: Obj, env: Mapping[str, str], config: Obj) -> list[str]:
    """The runtime's rule: `command` replaces the image's ENTRYPOINT and CMD, `args` alone
    replace CMD; only the pod's own strings are `$(VAR)`-expanded."""
    command = [expand(a, env) for a in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if command:
        return [*command, *args]
    return [*(config.get("Entrypoint") or []), *(args or config.get("Cmd") or [])]


def image_env(config: Obj, kube_env: Mapping[str, str], hostname: str, home: str) -> dict[str, str]:
    """The image's ENV, then HOSTNAME, then the pod's variables; HOME from the user's passwd
    entry when neither sets it."""
    env = {"PATH": DEFAULT_PATH}
    for item in config.get("Env") or []:
        name, _, value = item.partition("=")
        env[name] = value
    env["HOSTNAME"] = hostname
    env.update(kube_env)
    env.setdefault("HOME", home)
    return env


def first_container(pod: Obj) -> Obj:
    """The one container the node runner runs."""
    container: Obj = pod["spec"]["containers"][0]
    return container
