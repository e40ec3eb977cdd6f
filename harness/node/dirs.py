"""Where the node runner keeps pods' files under its state directory.

logs/<namespace>_<pod>.log     a pod's stdout and stderr (kept after the pod ends)
pods/<uid>/                    per-pod files: volumes, the termination-message file (removed
                               when the pod's worker ends)
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


def termination_log(state_dir: Path, uid: str) -> Path:
    return pod_dir(state_dir, uid) / "termination-log"


def pvc_dir(state_dir: Path, namespace: str, claim: str) -> Path:
    return state_dir / "pvc" / namespace / claim
