"""Installing the project's CRDs (crds/) into the test cluster, idempotently.

Several test modules need the CRDs, and a long-lived dev cluster may already hold an older copy,
so this uses server-side apply (no size-limited last-applied annotation, no conflict with a copy
applied by hand) and waits until every CRD is Established with its names accepted.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.kube import Kubectl
from harness.paths import REPO

CRD_DIR = REPO / "crds"


def crd_names(directory: Path = CRD_DIR) -> list[str]:
    """The metadata.name of every CRD in directory's YAML files."""
    names = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(doc["metadata"]["name"])
    return names


def install_crds(kubectl: Kubectl, directory: Path = CRD_DIR, timeout: int = 60) -> list[str]:
    """Apply every CRD in directory and wait until the API server serves them; their names."""
    kubectl.run(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=kubemigrate-tests",
        "-f",
        str(directory),
    )
    names = crd_names(directory)
    for condition in ("Established", "NamesAccepted"):
        kubectl.run(
            "wait",
            f"--for=condition={condition}",
            f"--timeout={timeout}s",
            *(f"crd/{name}" for name in names),
            timeout=timeout + 10,
        )
    return names
