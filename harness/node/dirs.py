"""Where the node runner keeps pods' files under its state directory.

logs/<namespace>_<pod>.log     a pod's stdout and stderr, all containers (kept after the pod)
pods/<uid>/                    per-pod files, removed when the pod's worker ends:
  volumes/<volume>/              emptyDir, Secret, ConfigMap, downward API, projected
  termination/<container>        the termination-message file bound into the container
  etc/{hosts,hostname,resolv.conf}  the files a kubelet and its runtime bind into /etc
  layers/<container>/            the writable layer of a container run from an image
pvc/<namespace>/<claim>/       a PersistentVolumeClaim's data, shared by every pod using it
"""

from __future__ import annotations

from pathlib import Path


def pod_log_path(state_dir: Path, namespace: str, pod: str) -> Path:
    """The file that holds a pod's output (all its runs, appended)."""
    return state_dir / "logs" / f"{namespace}_{pod}.log"


def pod_dir(state_dir: Path, uid: str) -> Path:
    return state_dir / "pods" / uid


def volume_dir(state_dir: Path, uid: str, volume: str) -> Path:
    return pod_dir(state_dir, uid) / "volumes" / volume


def termination_log(state_dir: Path, uid: str, container: str) -> Path:
    return pod_dir(state_dir, uid) / "termination" / container


def etc_dir(state_dir: Path, uid: str) -> Path:
    return pod_dir(state_dir, uid) / "etc"


def layer_dir(state_dir: Path, uid: str, container: str) -> Path:
    return pod_dir(state_dir, uid) / "layers" / container


def pvc_dir(state_dir: Path, namespace: str, claim: str) -> Path:
    return state_dir / "pvc" / namespace / claim
