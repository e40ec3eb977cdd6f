"""Where a Secret's value must never appear: our resources' status, Events, Jobs (their specs),
pods (their termination messages), the operator's log and every log the local stack writes
(the node runner's pod output, the control plane's, PostgreSQL's)."""

from __future__ import annotations

from collections.abc import Iterable

from harness.kube import Cluster, Kubectl
from harness.operator import OperatorProcess

PLACES = (
    "migrations.kubemigrate.dev",
    "databasebackups.kubemigrate.dev",
    "databaserestores.kubemigrate.dev",
    "events",
    "jobs",
    "pods",
    "configmaps",
)


def leaks(
    cluster: Cluster,
    kubectl: Kubectl,
    namespace: str,
    canary: str,
    operators: Iterable[OperatorProcess],
) -> list[str]:
    """Every place canary was found, with the line it is on."""
    found = []
    for place in PLACES:
        text = kubectl.run("get", place, "-n", namespace, "-o", "yaml", check=False).stdout
        found += _hits(place, text, canary)
    for op in operators:
        found += _hits("operator log", op.text(), canary)
    if cluster.state_dir is not None:
        for log in sorted(cluster.state_dir.rglob("*.log")):
            try:
                text = log.read_text(errors="replace")
            except OSError:
                continue
            found += _hits(log.name, text, canary)
    return found


def _hits(where: str, text: str, canary: str) -> list[str]:
    """Each line of text holding canary, cut to the canary and a little around it."""
    hits = []
    for line in text.splitlines():
        at = line.find(canary)
        if at >= 0:
            hits.append(f"{where}: ...{line[max(0, at - 60) : at + 80]}...")
    return hits
