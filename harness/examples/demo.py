"""`make demo`: the whole mission on the local cluster, in about a minute once things are built.

It starts the local stack (control plane, PostgreSQL, node runner), builds the project's image if
it is missing or stale (`make image`), installs the Helm chart into its own namespace with that
image (the operator runs there as the Deployment's pod, in-cluster, from the image, with the
chart's ServiceAccount and namespace-scoped RBAC; its preflight and backup Jobs run from it too),
applies the example migrations in `migrations/`, waits for Ready, takes a backup, rolls the
newest migration back, applies the example directory `migrations/set/sql` as one MigrationSet
(`kubemigrate manifests ... | kubectl apply -f -`) and rolls it back by lowering its
targetVersion, and says how to clean up.
"""

from __future__ import annotations

import subprocess
import sys
import time

from harness import databases, stack
from harness.crds import install_crds
from harness.image import build
from harness.kube import Kubectl, wait_for
from harness.paths import DEV_DIR, REPO
from harness.ports import free_port

NAMESPACE = "kubemigrate-demo"
RELEASE = "kubemigrate"
BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"


def say(text: str) -> None:
    print(f"{BOLD}==> {text}{RESET}", flush=True)


def show(kubectl: Kubectl, *args: str) -> None:
    print(f"{DIM}$ kubectl {' '.join(args)}{RESET}")
    print(kubectl.run(*args).stdout.rstrip(), flush=True)


def backup_manifest() -> str:
    return f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: backups, namespace: {NAMESPACE}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: kubemigrate.dev/v1alpha1
kind: DatabaseBackup
metadata: {{name: app-db-nightly, namespace: {NAMESPACE}}}
spec:
  database: {{secretRef: {{name: app-db}}}}
  storage: {{persistentVolumeClaim: {{claimName: backups}}}}
"""


def reset(kubectl: Kubectl, helm: str, kubeconfig: str) -> None:
    """Remove an earlier demo: its resources first, while its operator still runs to release
    their finalizers, then the release and the namespace."""
    if kubectl.run("get", "namespace", NAMESPACE, check=False).returncode != 0:
        return
    say(f"Removing the previous demo in namespace {NAMESPACE}")
    kubectl.run(
        "delete",
        "migrationsets,migrations,databasebackups,databaserestores",
        "--all",
        "-n",
        NAMESPACE,
        "--timeout=60s",
        check=False,
    )
    subprocess.run(
        [
            helm,
            "uninstall",
            RELEASE,
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            NAMESPACE,
            "--wait",
        ],
        check=False,
        capture_output=True,
    )
    kubectl.run("delete", "namespace", NAMESPACE, "--timeout=120s", check=False)


def set_phase(kubectl: Kubectl, target: str) -> bool:
    status = kubectl.json("get", "migrationset", "orders", "-n", NAMESPACE).get("status") or {}
    return status.get("currentVersion") == target and status.get("phase") == "Succeeded"


def migration_set(kubectl: Kubectl, server_url: str) -> None:
    """A whole directory as one resource: applied in one Job, then rolled back by lowering
    spec.targetVersion, as a GitOps user would in git."""
    say(
        "Applying migrations/set/sql as one MigrationSet: kubemigrate manifests ... | kubectl apply"
    )
    url = databases.create(server_url, "demo_orders")
    kubectl.apply(
        kubectl.run(
            "create",
            "secret",
            "generic",
            "orders-db",
            "-n",
            NAMESPACE,
            f"--from-literal=url={url}",
            "--dry-run=client",
            "-o",
            "yaml",
        ).stdout
    )
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubemigrate",
            "manifests",
            str(REPO / "migrations/set/sql"),
            "--name",
            "orders",
            "--secret",
            "orders-db",
            "-n",
            NAMESPACE,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    kubectl.apply(printed.stdout)
    kubectl.run(
        "wait", "--for=condition=Ready", "migrationset/orders", "-n", NAMESPACE, "--timeout=180s"
    )
    show(kubectl, "get", "migrationsets", "-n", NAMESPACE)

    say("Rolling the set back to 002: kubectl patch ... spec.targetVersion=002")
    kubectl.run(
        "patch",
        "migrationset",
        "orders",
        "-n",
        NAMESPACE,
        "--type",
        "merge",
        "-p",
        '{"spec":{"targetVersion":"002"}}',
    )
    wait_for(lambda: set_phase(kubectl, "002"), timeout=180, what="the set's rollback")
    show(kubectl, "get", "migrationsets", "-n", NAMESPACE)


def main() -> int:
    started = time.monotonic()
    say(
        "Starting the local cluster and PostgreSQL (the first run builds Kubernetes from Go "
        "modules: about five minutes)"
    )
    s = stack.up(DEV_DIR)
    say(
        "Building the image localhost/kubemigrate:dev with buildah, unless it is up to date "
        "(the first build makes a Debian base with mmdebstrap: about two minutes)"
    )
    image = build.ensure()
    print(f"  {image.name} {image.digest}")
    kubectl = Kubectl(s.control_plane.bin_dir / "kubectl", s.kubeconfig)
    helm = s.control_plane.bin_dir / "helm"
    reset(kubectl, str(helm), str(s.kubeconfig))

    say(
        f"Installing the Helm chart into namespace {NAMESPACE} (operator in-cluster, "
        "namespace-scoped RBAC)"
    )
    install_crds(kubectl)
    subprocess.run(
        [
            str(helm),
            "upgrade",
            "--install",
            RELEASE,
            str(REPO / "helm/kubemigrate"),
            "--kubeconfig",
            str(s.kubeconfig),
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "crds.create=false",
            "--set",
            "rbac.scope=namespace",
            "--set",
            f"metrics.port={free_port()}",
            "--set",
            f"liveness.port={free_port()}",
            "--set",
            f"image.repository={build.DEV_REPOSITORY}",
            "--set",
            f"image.tag={build.DEV_TAG}",
            "--wait",
            "--timeout",
            "120s",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    show(kubectl, "get", "deployment,pods", "-n", NAMESPACE)
    show(
        kubectl,
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-o",
        "custom-columns=POD:.metadata.name,IMAGE-ID:.status.containerStatuses[0].imageID",
    )

    say("Creating the database and its Secret")
    url = databases.create(s.database.url, "demo")
    kubectl.apply(
        kubectl.run(
            "create",
            "secret",
            "generic",
            "app-db",
            "-n",
            NAMESPACE,
            f"--from-literal=url={url}",
            "--dry-run=client",
            "-o",
            "yaml",
        ).stdout
    )
    print(f"  database: {url.rsplit('/', 1)[-1]} on the local PostgreSQL")

    say("Applying migrations/ (001 initial schema, 002 seed groups, 003 user profiles)")
    for path in sorted((REPO / "migrations").glob("0*.yaml")):
        if "secret" not in path.name:
            kubectl.run("apply", "-n", NAMESPACE, "-f", str(path))
    kubectl.run(
        "wait", "--for=condition=Ready", "migrations", "--all", "-n", NAMESPACE, "--timeout=120s"
    )
    show(kubectl, "get", "migrations", "-n", NAMESPACE)

    say("Taking a backup with pg_dump (a DatabaseBackup runs as a Job)")
    kubectl.apply(backup_manifest())
    kubectl.run(
        "wait",
        "--for=condition=Ready",
        "databasebackup/app-db-nightly",
        "-n",
        NAMESPACE,
        "--timeout=120s",
    )
    show(kubectl, "get", "migrations,databasebackups", "-n", NAMESPACE)

    say("Rolling back 003-user-profiles: kubectl patch ... spec.rollback=true")
    kubectl.run(
        "patch",
        "migration",
        "003-user-profiles",
        "-n",
        NAMESPACE,
        "--type",
        "merge",
        "-p",
        '{"spec":{"rollback":true}}',
    )
    wait_for(
        lambda: (
            kubectl.json("get", "migration", "003-user-profiles", "-n", NAMESPACE)
            .get("status", {})
            .get("phase")
            == "RolledBack"
        ),
        timeout=60,
        what="the rollback",
    )
    show(kubectl, "get", "migrations", "-n", NAMESPACE)
    show(
        kubectl,
        "get",
        "events",
        "-n",
        NAMESPACE,
        "--field-selector",
        "involvedObject.kind=Migration",
        "--sort-by=.lastTimestamp",
    )

    migration_set(kubectl, s.database.url)

    say(f"Done in {time.monotonic() - started:.0f}s. Explore, then clean up:")
    print(f"""  source {DEV_DIR / "env"}            # KUBECONFIG and DATABASE_URL for this cluster
  kubectl get mig,migset,dbbackup -n {NAMESPACE} -o wide
  kubectl describe migration 001-initial-schema -n {NAMESPACE}
  psql '{url}' -c 'TABLE kubemigrate.history'   # the history, in the database
  make demo                            # again: removes this demo first
  # clean up: the resources first, while the operator runs to release their finalizers
  kubectl delete migset,mig,dbbackup --all -n {NAMESPACE}
  helm uninstall {RELEASE} -n {NAMESPACE} && kubectl delete namespace {NAMESPACE}
  make dev-down                        # stop the cluster and PostgreSQL (data stays in .dev/)""")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(
            f"demo failed: {' '.join(map(str, exc.cmd[:3]))}: {exc.stderr or exc.stdout}",
            file=sys.stderr,
        )
        sys.exit(1)
    except AssertionError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)
