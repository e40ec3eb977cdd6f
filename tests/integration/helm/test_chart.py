"""The Helm chart against the real API server: lint, server-side dry runs, and its RBAC.

The RBAC tests install the chart for real and ask the API server (`kubectl auth can-i` as the
chart's ServiceAccount) what the operator may do, because least privilege is a property of the
rules as the authorizer reads them, not of how the templates look. The operator's pod is marked
for the local node runner to skip: these tests are about the chart, not the operator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.crds import install_crds
from harness.kube import Kubectl, wait_for
from harness.paths import REPO
from integration.helm.helm_helpers import CHART, Helm
from kubemigrate.controller.metrics import Metrics
from kubemigrate.settings import Settings

pytestmark = pytest.mark.integration

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
SKIP_POD = "podAnnotations.kubemigrate\\.dev/node-runner=skip"
KOPF = ["kopf", "run", "--standalone", "--liveness=http://0.0.0.0:8081/healthz"]


def docs(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def by_kind(rendered: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in docs(rendered) if d["kind"] == kind]


def operator_container(rendered: str) -> dict[str, Any]:
    (deployment,) = by_kind(rendered, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# --- lint and schema ---------------------------------------------------------------------------


def test_there_are_ci_values_files() -> None:
    assert {p.name for p in CI_VALUES} >= {
        "default-values.yaml",
        "namespaced-values.yaml",
        "servicemonitor-values.yaml",
    }


@pytest.mark.parametrize("values", CI_VALUES, ids=ids(CI_VALUES))
def test_lint_is_clean(helm: Helm, values: Path) -> None:
    proc = helm.run("lint", "--strict", str(CHART), "-f", str(values))
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("rbac.scope=bogus", "/rbac/scope"),
        ("replicaCount=2", "/replicaCount"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("operator.verbose=maybe", "/operator/verbose"),
        ("operator.lockTimeoutSeconds=0", "/operator/lockTimeoutSeconds"),
        ("metrics.port=70000", "/metrics/port"),
        ("rbac.secret.clusterWide=false", "/rbac"),  # a typo: unknown keys are refused
    ],
)
def test_schema_rejects_bad_values(helm: Helm, setting: str, path: str) -> None:
    proc = helm.run("lint", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0
    assert f"at '{path}'" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


# --- what the templates say --------------------------------------------------------------------


def test_deployment_runs_one_standalone_kopf_with_liveness_probe(helm: Helm) -> None:
    rendered = helm.template()
    (deployment,) = by_kind(rendered, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    container = operator_container(rendered)
    assert container["command"] == [
        *KOPF,
        "--namespace=default",
        "-m",
        "kubemigrate.controller.main",
    ]
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe["path"] == "/healthz" and ports[probe["port"]] == 8081
    assert ports["http-metrics"] == 8080
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert env_of(container)["KUBEMIGRATE_IMAGE"] == container["image"]


def test_env_sets_every_operator_setting(helm: Helm) -> None:
    """The chart and settings.py name the same variables; a new setting needs a value."""
    values = str(CHART / "ci" / "namespaced-values.yaml")  # sets the optional ones too
    env = env_of(operator_container(helm.template("-f", values)))
    chart_settings = {k.removeprefix("KUBEMIGRATE_").lower() for k in env}
    assert chart_settings == set(Settings.model_fields)
    Settings.from_env(env)  # and the operator accepts what the chart sets


def test_namespace_scope_watches_only_the_namespaces_it_is_given(helm: Helm) -> None:
    rendered = helm.template("--set", "rbac.scope=namespace", "--set", "watchNamespaces={apps,web}")
    container = operator_container(rendered)
    assert [a for a in container["command"] if "namespace" in a] == [
        "--namespace=apps",
        "--namespace=web",
    ]
    kinds = {d["kind"] for d in docs(rendered)}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    roles = by_kind(rendered, "Role")
    bindings = by_kind(rendered, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["apps", "web"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["apps", "web"]
    for role in roles:  # Secrets per namespace: get, in that namespace only
        assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]} in role["rules"]


def test_secret_list_for_fleets_only_when_asked(helm: Helm) -> None:
    """A fleet chosen by label needs Secret `list`: granted only with rbac.secrets.list."""
    rendered = helm.template("--set", "rbac.secrets.list=true")
    for role in by_kind(rendered, "Role"):
        assert {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "list"],
        } in role["rules"]


def test_the_defaults_are_the_narrowest_useful_scope(helm: Helm) -> None:
    """One namespace (the release's), Secrets there only, nothing cluster-scoped but the
    admission policy that fences the operator's Jobs."""
    rendered = helm.template(namespace="apps")
    assert "--namespace=apps" in operator_container(rendered)["command"]
    cluster_scoped = {d["kind"] for d in docs(rendered) if "namespace" not in d["metadata"]}
    assert cluster_scoped == {
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    (role,) = by_kind(rendered, "Role")
    assert role["metadata"]["namespace"] == "apps"


def test_cluster_scope_is_an_explicit_choice_with_a_warning() -> None:
    values = (CHART / "values.yaml").read_text()
    scope_doc = values[: values.index("  scope: namespace")]
    assert "WARNING" in scope_doc[scope_doc.rindex("# --") :]
    secrets_doc = values[: values.index("    clusterWide: false")]
    assert "WARNING" in secrets_doc[secrets_doc.rindex("# --") :]
    schema = json.loads((CHART / "values.schema.json").read_text())
    rbac = schema["properties"]["rbac"]["properties"]
    assert "WARNING" in rbac["scope"]["description"]
    assert "WARNING" in rbac["secrets"]["properties"]["clusterWide"]["description"]


def test_cluster_scope_reads_secrets_cluster_wide_only_when_asked(helm: Helm) -> None:
    def secret_rules(*sets: str) -> list[tuple[str, str]]:
        rendered = helm.template(
            "--set", "rbac.scope=cluster", *[a for s in sets for a in ("--set", s)]
        )
        return [
            (d["kind"], d["metadata"].get("namespace", ""))
            for d in docs(rendered)
            if d["kind"] in ("Role", "ClusterRole")
            for r in d["rules"]
            if "secrets" in r["resources"]
        ]

    assert secret_rules() == []
    assert secret_rules("rbac.secrets.namespaces={team-a}") == [("Role", "team-a")]
    assert secret_rules("rbac.secrets.clusterWide=true") == [("ClusterRole", "")]


def test_offline_rendering_needs_no_kube_version(helm: Helm) -> None:
    """`helm template | kubectl apply`, or a review, with no cluster to ask."""
    proc = helm.run("template", "kubemigrate", str(CHART), check=False)
    assert proc.returncode == 0, proc.stderr
    assert by_kind(proc.stdout, "Deployment")


@pytest.mark.parametrize(
    ("version", "sets", "needs"),
    [
        ("1.27.0", [], "1.28"),
        ("1.29.0", [], "admissionPolicy.enabled=false"),
    ],
)
def test_a_cluster_known_to_be_too_old_is_refused(
    helm: Helm, version: str, sets: list[str], needs: str
) -> None:
    proc = helm.run("template", "x", str(CHART), "--kube-version", version, *sets, check=False)
    assert proc.returncode != 0
    assert needs in proc.stderr, proc.stderr
    ok = helm.run(
        "template",
        "x",
        str(CHART),
        "--kube-version",
        "1.29.0",
        "--set",
        "admissionPolicy.enabled=false",
    )
    assert by_kind(ok.stdout, "Deployment")


@pytest.mark.parametrize("values", CI_VALUES, ids=ids(CI_VALUES))
def test_rbac_has_no_wildcards(helm: Helm, values: Path) -> None:
    rendered = helm.template("-f", str(values))
    rules = [r for d in docs(rendered) if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]]
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), rule
    secret_verbs = {v for r in rules if "secrets" in r["resources"] for v in r["verbs"]}
    assert secret_verbs <= {"get"}


def test_crd_templates_are_the_generated_crds_with_keep(helm: Helm) -> None:
    """templates/crds/ hold crds/ unchanged but for the keep annotation, and obey crds.create."""
    rendered = {
        d["metadata"]["name"]: d for d in by_kind(helm.template(), "CustomResourceDefinition")
    }
    generated = {}
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crd["metadata"]["annotations"] = {"helm.sh/resource-policy": "keep"}
        generated[crd["metadata"]["name"]] = crd
    assert rendered == generated
    assert not by_kind(helm.template("--set", "crds.create=false"), "CustomResourceDefinition")


def test_service_monitor_only_when_asked(helm: Helm) -> None:
    assert not by_kind(helm.template(), "ServiceMonitor")
    rendered = helm.template("-f", str(CHART / "ci" / "servicemonitor-values.yaml"))
    (monitor,) = by_kind(rendered, "ServiceMonitor")
    (service,) = by_kind(rendered, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_prometheus_rule_only_when_asked_and_its_alerts_use_the_operators_metrics(
    helm: Helm,
) -> None:
    assert not by_kind(helm.template(), "PrometheusRule")
    rendered = helm.template("-f", str(CHART / "ci" / "prometheusrule-values.yaml"))
    (rule,) = by_kind(rendered, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {
        "KubemigrateBackupTooOld",
        "KubemigrateBackupFailing",
        "KubemigrateBackupScheduleStuck",
    }
    assert alerts["KubemigrateBackupTooOld"]["expr"].strip().endswith("> 7200")
    assert {r["labels"]["severity"] for r in alerts.values()} == {"critical"}
    # Every metric an alert reads is one the operator exports (a renamed metric fails here).
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_count", "_sum", "_bucket")}
    exported = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }
    for alert in alerts.values():
        used = set(re.findall(r"kubemigrate_[a-z_]+", alert["expr"]))
        assert used and used <= exported, (alert["alert"], used - exported)


def test_synced_crds_and_manifests_have_not_drifted(helm: Helm) -> None:
    for args in (
        ["helm/sync_crds.py", "--check"],
        ["helm/render_manifests.py", "--check", "--helm", str(helm.binary)],
    ):
        proc = subprocess.run(
            [sys.executable, *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr


# --- the API server accepts it -----------------------------------------------------------------


def _served(kubectl: Kubectl, group: str) -> bool:
    return bool(kubectl.run("api-resources", f"--api-group={group}", "-o", "name").stdout.strip())


@pytest.mark.parametrize("values", CI_VALUES, ids=ids(CI_VALUES))
def test_api_server_accepts_rendered_chart(
    helm: Helm, kubectl: Kubectl, namespace: str, values: Path
) -> None:
    """Everything but the CRDs (other tests own the installed ones; see the next test)."""
    rendered = helm.template(
        "-f",
        str(values),
        "--set",
        "crds.create=false",
        "--set",
        f"rbac.secrets.namespaces={{{namespace}}}",
        release=f"dry-{namespace}",
        namespace=namespace,
    )
    objects = docs(rendered)
    if not _served(kubectl, "monitoring.coreos.com"):
        objects = [d for d in objects if d["kind"] not in ("ServiceMonitor", "PrometheusRule")]
    proc = kubectl.apply(yaml.safe_dump_all(objects), "--dry-run=server")
    assert proc.stdout.count("(server dry run)") == len(objects), proc.stdout


def test_api_server_accepts_crd_templates(helm: Helm, kubectl: Kubectl) -> None:
    rendered = helm.template(
        "--show-only",
        "templates/crds/kubemigrate.dev_migrations.yaml",
        "--show-only",
        "templates/crds/kubemigrate.dev_databasebackups.yaml",
        "--show-only",
        "templates/crds/kubemigrate.dev_databaserestores.yaml",
        "--show-only",
        "templates/crds/kubemigrate.dev_databasebackupschedules.yaml",
    )
    proc = kubectl.run(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--field-manager=kubemigrate-chart-test",
        "-f",
        "-",
        input=rendered,
    )
    assert proc.stdout.count("(server dry run)") == 4, proc.stdout


# --- RBAC as the API server reads it -----------------------------------------------------------


class Can:
    """`kubectl auth can-i` as one ServiceAccount."""

    def __init__(self, kubectl: Kubectl, namespace: str, name: str) -> None:
        self.kubectl, self.user = kubectl, f"system:serviceaccount:{namespace}:{name}"

    def __call__(
        self, verb: str, resource: str, namespace: str | None = None, subresource: str | None = None
    ) -> bool:
        scope = ["-n", namespace] if namespace else []
        sub = [f"--subresource={subresource}"] if subresource else []
        proc = self.kubectl.run(
            "auth", "can-i", verb, resource, *scope, *sub, f"--as={self.user}", check=False
        )
        answer = proc.stdout.strip()
        assert answer in ("yes", "no"), proc.stderr
        return answer == "yes"


@pytest.fixture
def other_namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def _install(helm: Helm, release: str, namespace: str, *sets: str) -> None:
    args = [
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "crds.create=false",
        "--set",
        SKIP_POD,
    ]
    for s in sets:
        args += ["--set", s]
    helm.run(*args)


def _uninstall(helm: Helm, release: str, namespace: str) -> None:
    helm.run("uninstall", release, "--namespace", namespace, check=False)


def _common_checks(can: Can, ns: str) -> None:
    """What the operator may and may not do in a namespace it manages."""
    assert can("get", "secrets", ns)
    assert not can("list", "secrets", ns)
    assert not can("watch", "secrets", ns)
    assert not can("*", "*", ns)
    assert not can("*", "secrets", ns)
    for verb in ("get", "list", "watch", "create", "delete", "deletecollection"):
        assert can(verb, "jobs.batch", ns), verb
    assert not can("update", "jobs.batch", ns)
    assert can("patch", "migrations.kubemigrate.dev", ns)
    assert not can("delete", "migrations.kubemigrate.dev", ns)
    assert not can("create", "migrations.kubemigrate.dev", ns)
    assert can("patch", "migrations.kubemigrate.dev", ns, subresource="status")
    assert can("update", "databasebackups.kubemigrate.dev", ns, subresource="status")
    assert can("update", "databaserestores.kubemigrate.dev", ns, subresource="finalizers")
    assert can("list", "pods", ns) and not can("create", "pods", ns)
    assert not can("get", "pods", ns, subresource="log")
    assert not can("create", "pods", ns, subresource="exec")
    assert can("create", "configmaps", ns)
    # A fleet wave's workers update its ledger: the operator grants that, so it must hold it.
    assert can("update", "configmaps", ns) and can("patch", "configmaps", ns)
    assert can("create", "serviceaccounts", ns) and not can("update", "serviceaccounts", ns)
    assert can("create", "roles.rbac.authorization.k8s.io", ns)
    assert not can("bind", "roles.rbac.authorization.k8s.io", ns)
    assert not can("escalate", "roles.rbac.authorization.k8s.io", ns)
    assert can("create", "persistentvolumeclaims", ns)
    assert not can("delete", "persistentvolumeclaims", ns)
    assert can("create", "events", ns) and can("create", "events.events.k8s.io", ns)
    assert not can("create", "serviceaccounts", ns, subresource="token")
    # Roles for fleet waves, yes; RBAC lets it grant only what it holds (no bind, no escalate).
    assert not can("update", "roles.rbac.authorization.k8s.io", ns)


def test_namespace_scope_rbac(
    helm: Helm, kubectl: Kubectl, namespace: str, other_namespace: str, crds: list[str]
) -> None:
    release = "km"
    _install(helm, release, namespace, "rbac.scope=namespace")
    try:
        can = Can(kubectl, namespace, f"{release}-kubemigrate")
        _common_checks(can, namespace)
        assert not can("get", "secrets", other_namespace)
        assert not can("list", "jobs.batch", other_namespace)
        assert not can("list", "migrations.kubemigrate.dev", other_namespace)
        assert not can("list", "customresourcedefinitions.apiextensions.k8s.io")
        assert not can("list", "namespaces")
        deployment = kubectl.json("get", "deployment", f"{release}-kubemigrate", "-n", namespace)
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        assert f"--namespace={namespace}" in command
    finally:
        _uninstall(helm, release, namespace)


@pytest.mark.parametrize("cluster_wide_secrets", [True, False], ids=["secrets-all", "secrets-some"])
def test_cluster_scope_rbac(
    helm: Helm,
    kubectl: Kubectl,
    namespace: str,
    other_namespace: str,
    cluster_wide_secrets: bool,
    crds: list[str],
) -> None:
    # ClusterRoles are cluster-scoped: name the release after the test's namespace.
    release = f"km-{namespace}"
    sets = ["rbac.scope=cluster"]
    if cluster_wide_secrets:
        sets += ["rbac.secrets.clusterWide=true"]
    else:
        sets += [f"rbac.secrets.namespaces={{{namespace}}}"]
    _install(helm, release, namespace, *sets)
    try:
        can = Can(kubectl, namespace, f"{release}-kubemigrate")
        for ns in (namespace, other_namespace):
            assert can("create", "jobs.batch", ns)
            assert can("watch", "databasebackups.kubemigrate.dev", ns)
        _common_checks(can, namespace)
        assert can("get", "secrets", other_namespace) is cluster_wide_secrets
        assert not can("list", "secrets", other_namespace)
        assert not can("list", "secrets")
        assert can("watch", "customresourcedefinitions.apiextensions.k8s.io")
        assert not can("create", "customresourcedefinitions.apiextensions.k8s.io")
        assert not can("delete", "namespaces")
        assert not can("create", "clusterroles.rbac.authorization.k8s.io")
        assert not can("list", "nodes")
    finally:
        _uninstall(helm, release, namespace)
    # The cluster-scoped objects go with the release.
    wait_for(
        lambda: (
            kubectl.run("get", "clusterrole", f"{release}-kubemigrate", check=False).returncode != 0
        ),
        timeout=30,
        what="ClusterRole removed on uninstall",
    )


def test_notes_example_migration_is_accepted(helm: Helm, kubectl: Kubectl, namespace: str) -> None:
    """The Migration that NOTES.txt tells users to apply passes the CRD's validation."""
    install_crds(kubectl)
    out = helm.run(
        "install",
        "notes",
        str(CHART),
        "--namespace",
        namespace,
        "--dry-run=client",
        "--set",
        "crds.create=false",
        "--set",
        "rbac.scope=namespace",
    ).stdout
    notes = out[out.index("NOTES:") :]
    assert f"kubectl -n {namespace} wait --for=condition=Ready mig/create-users" in notes
    example = notes.split("<<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    proc = kubectl.apply(example, "-n", namespace, "--dry-run=server")
    assert "migration.kubemigrate.dev/create-users created (server dry run)" in proc.stdout
