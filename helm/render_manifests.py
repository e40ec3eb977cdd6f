"""Render manifests/install.yaml from the Helm chart, or check it for drift.

    .venv/bin/python helm/render_manifests.py [--helm PATH]           # write it
    .venv/bin/python helm/render_manifests.py [--helm PATH] --check   # exit 1 if it drifted

The plain install (`kubectl apply --server-side -f manifests/install.yaml`) is the chart with
its default values, released as `kubemigrate` into `kubemigrate-system`, CRDs included, plus
that Namespace. Rendering it from the chart means there is one definition of the install to
review and test. helm comes from --helm, else $HELM, else PATH (`make manifests` passes the one
`make tools` built).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "kubemigrate"
OUTPUT = REPO / "manifests" / "install.yaml"
RELEASE, NAMESPACE = "kubemigrate", "kubemigrate-system"

HEADER = f"""\
# kubemigrate: plain install manifests (CRDs, operator, RBAC, metrics Service).
# Generated from helm/kubemigrate with its default values by helm/render_manifests.py
# (`make manifests`). Do not edit. Install with:
#   kubectl apply --server-side -f manifests/install.yaml
# The CRDs are large; server-side apply avoids the client-side last-applied annotation limit.
---
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/part-of: kubemigrate
"""


def find_helm(given: str | None) -> str:
    helm = given or os.environ.get("HELM") or shutil.which("helm")
    if not helm:
        raise SystemExit("helm not found: pass --helm, set $HELM, or run `make tools`")
    return helm


def render(helm: str) -> str:
    """The install manifests, as they should be committed."""
    proc = subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,  # offline: no --kube-version, nothing renders differently by version
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"helm template failed:\n{proc.stderr}")
    return HEADER + proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helm", help="the helm binary")
    parser.add_argument("--check", action="store_true", help="report drift, change nothing")
    args = parser.parse_args(argv)
    want = render(find_helm(args.helm))
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != want:
            print(f"drift: {OUTPUT.relative_to(REPO)}; run `make manifests`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(want)
    return 0


if __name__ == "__main__":
    sys.exit(main())
