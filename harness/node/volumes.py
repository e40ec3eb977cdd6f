"""A pod's volumes as host paths, ready to be bound into its sandbox.

emptyDir is a per-pod directory; a persistentVolumeClaim is a directory per claim name that
outlives pods (no PersistentVolume is bound: the claim's name is the storage); hostPath is the
host path itself. secret, configMap, downwardAPI and projected volumes (including the
ServiceAccount token volume the admission plugin injects) are files written from the API at each
container start and mounted read-only, as the kubelet mounts them.

Ownership follows the kubelet too: an emptyDir is world-writable (0777), and with the pod's
fsGroup set an emptyDir or claim is given to that group, group-writable, with set-group-ID
directories (SetVolumeOwnership), so a non-root container can write its backups to a claim.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from kubernetes.client.exceptions import ApiException

from harness.node import dirs
from harness.node.env import expand
from harness.node.refs import ConfigError, Obj, PodError, Refs
from harness.node.sandbox import Mount

Files = dict[str, tuple[bytes, int | None]]  # relative path -> content, mode (None: default)
DEFAULT_MODE = 0o644


def _relative(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise PodError(f"invalid relative path {path!r} in a volume")
    return rel


def _key_files(kind: str, source: Obj, refs: Refs, name_field: str = "name") -> Files:
    """The files of a secret/configMap volume (or projection): all keys, or the listed items."""
    name = source[name_field]
    data = refs.object_data(kind, name, source.get("optional"))
    items = source.get("items")
    if not items:
        return {key: (value, None) for key, value in data.items()}
    files: Files = {}
    for item in items:
        if item["key"] in data:
            files[item["path"]] = (data[item["key"]], item.get("mode"))
        elif not source.get("optional"):
            raise ConfigError(f"couldn't find key {item['key']} in {kind} {refs.namespace}/{name}")
    return files


def _downward_files(items: list[Obj], refs: Refs, container: str) -> Files:
    files: Files = {}
    for item in items:
        if "fieldRef" in item:
            value = refs.field(item["fieldRef"]["fieldPath"])
        else:
            value = refs.resource(item["resourceFieldRef"], container)
        files[item["path"]] = (value.encode(), item.get("mode"))
    return files


def _projected_files(sources: list[Obj], refs: Refs, container: str) -> Files:
    files: Files = {}
    for source in sources:
        if "secret" in source:
            files |= _key_files("Secret", source["secret"], refs)
        elif "configMap" in source:
            files |= _key_files("ConfigMap", source["configMap"], refs)
        elif "downwardAPI" in source:
            files |= _downward_files(source["downwardAPI"].get("items") or [], refs, container)
        elif "serviceAccountToken" in source:
            sat = source["serviceAccountToken"]
            token = refs.token(sat.get("audience"), sat.get("expirationSeconds"))
            files[sat["path"]] = (token.encode(), None)
        else:
            raise PodError(f"unsupported projected volume source {sorted(source)}")
    return files


def write_files(directory: Path, files: Files, default_mode: int | None) -> None:
    """Replace directory's contents with files."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for rel, (content, mode) in files.items():
        path = directory / _relative(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode if mode is not None else default_mode or DEFAULT_MODE)


def set_ownership(path: Path, fs_group: int | None) -> None:
    """The kubelet's SetVolumeOwnership: fsGroup's, group read-write, directories set-gid."""
    if fs_group is None:
        return
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        os.chown(p, -1, fs_group)
        mode = p.stat().st_mode
        extra = stat.S_IRGRP | stat.S_IWGRP
        if stat.S_ISDIR(mode):
            extra |= stat.S_IXGRP | stat.S_ISGID
        elif mode & stat.S_IXUSR:
            extra |= stat.S_IXGRP
        p.chmod(mode | extra)


def _pvc(claim: str, refs: Refs, state_dir: Path) -> Path:
    try:
        refs.core.read_namespaced_persistent_volume_claim(
            claim, refs.namespace, _preload_content=False
        )
    except ApiException as e:
        if e.status == 404:
            raise ConfigError(f'persistentvolumeclaim "{claim}" not found') from e
        raise
    path = dirs.pvc_dir(state_dir, refs.namespace, claim)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _host_path(spec: Obj) -> Path:
    path = Path(spec["path"])
    kind = spec.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    if not path.exists():
        raise ConfigError(f"hostPath {path} does not exist")
    return path


def materialize(volume: Obj, refs: Refs, state_dir: Path, container: str) -> tuple[Path, bool]:
    """The host path holding volume, and whether it must be mounted read-only."""
    uid = refs.pod["metadata"]["uid"]
    own_dir = dirs.volume_dir(state_dir, uid, volume["name"])
    fs_group = (refs.pod["spec"].get("securityContext") or {}).get("fsGroup")
    if "emptyDir" in volume:
        own_dir.mkdir(parents=True, exist_ok=True)
        own_dir.chmod(0o777)
        set_ownership(own_dir, fs_group)
        return own_dir, False
    if "persistentVolumeClaim" in volume:
        pvc = volume["persistentVolumeClaim"]
        claim = _pvc(pvc["claimName"], refs, state_dir)
        set_ownership(claim, fs_group)
        return claim, bool(pvc.get("readOnly"))
    if "hostPath" in volume:
        return _host_path(volume["hostPath"]), False
    files, default_mode = _api_files(volume, refs, container)
    write_files(own_dir, files, default_mode)
    return own_dir, True


def _api_files(volume: Obj, refs: Refs, container: str) -> tuple[Files, int | None]:
    """The files of a volume made from the API (secret, configMap, downwardAPI, projected)."""
    if "secret" in volume:
        spec = volume["secret"]
        files = _key_files("Secret", spec, refs, name_field="secretName")
    elif "configMap" in volume:
        spec = volume["configMap"]
        files = _key_files("ConfigMap", spec, refs)
    elif "downwardAPI" in volume:
        spec = volume["downwardAPI"]
        files = _downward_files(spec.get("items") or [], refs, container)
    elif "projected" in volume:
        spec = volume["projected"]
        files = _projected_files(spec.get("sources") or [], refs, container)
    else:
        kinds = sorted(set(volume) - {"name"})
        raise PodError(f'volume "{volume["name"]}": unsupported type {kinds}')
    return files, spec.get("defaultMode")


def container_mounts(
    pod: Obj, container: Obj, refs: Refs, state_dir: Path, env: Mapping[str, str]
) -> list[Mount]:
    """The container's volumeMounts as sandbox mounts (subPath and subPathExpr included)."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    ready: dict[str, tuple[Path, bool]] = {}
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        name = vm["name"]
        if name not in volumes:
            raise PodError(f'volumeMount "{name}": no such volume in the pod')
        if name not in ready:
            ready[name] = materialize(volumes[name], refs, state_dir, container["name"])
        source, read_only = ready[name]
        sub = vm.get("subPath") or expand(vm.get("subPathExpr") or "", env)
        if sub:
            source = source / _relative(sub)
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(source, vm["mountPath"], read_only or bool(vm.get("readOnly"))))
    return mounts
