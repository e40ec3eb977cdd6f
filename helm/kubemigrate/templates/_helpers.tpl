{{/*
Helpers of the kubemigrate chart. Every name is prefixed with the chart name so that the
templates of a parent chart never collide with these.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "kubemigrate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's resources: fullnameOverride, else release-chart (once). */}}
{{- define "kubemigrate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "kubemigrate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels every resource of the release carries. */}}
{{- define "kubemigrate.labels" -}}
helm.sh/chart: {{ include "kubemigrate.chart" . }}
{{ include "kubemigrate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubemigrate
{{- end }}

{{/* The labels that select the operator's pod; never change them (Deployment selectors are immutable). */}}
{{- define "kubemigrate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubemigrate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "kubemigrate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubemigrate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches in namespace scope, as a JSON list (fromJsonArray). */}}
{{- define "kubemigrate.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of Job pods: jobs.serviceAccountName, else the namespace's default. */}}
{{- define "kubemigrate.jobServiceAccount" -}}
{{- default "default" .Values.jobs.serviceAccountName }}
{{- end }}

{{/*
Refuse a cluster known to be too old. `helm template` without --kube-version renders for Helm's
offline placeholder, v1.20.0, which says nothing about the cluster the output will be applied
to: that is not checked, so offline rendering works (no Kubernetes that old is supported
anywhere). Against a cluster (install, upgrade, --dry-run=server) or with --kube-version it is.
*/}}
{{- define "kubemigrate.checkKubeVersion" -}}
{{- $version := .Capabilities.KubeVersion.Version }}
{{- if ne $version "v1.20.0" }}
{{- if not (semverCompare ">=1.28.0-0" $version) }}
{{- fail (printf "kubemigrate needs Kubernetes 1.28 or newer; the cluster is %s" $version) }}
{{- end }}
{{- if and .Values.admissionPolicy.enabled (not (semverCompare ">=1.30.0-0" $version)) }}
{{- fail (printf "admissionPolicy (a ValidatingAdmissionPolicy) needs Kubernetes 1.30 or newer; the cluster is %s: set admissionPolicy.enabled=false" $version) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether the operator is namespace-scoped ("true" or ""). */}}
{{- define "kubemigrate.namespaced" -}}
{{- if eq .Values.rbac.scope "namespace" }}true{{ end }}
{{- end }}

{{/* The operator's image: repository@digest, or repository:tag (default appVersion). */}}
{{- define "kubemigrate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The image of preflight, backup and restore Jobs: jobs.image, else the operator's own. */}}
{{- define "kubemigrate.jobImage" -}}
{{- $repo := default .Values.image.repository .Values.jobs.image.repository }}
{{- if .Values.jobs.image.tag }}
{{- printf "%s:%s" $repo .Values.jobs.image.tag }}
{{- else if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The application's rules, the same in a ClusterRole (cluster scope) and a Role (namespace scope).
Secrets are not here: their `get` is granted separately so that it can be narrowed.
*/}}
{{- define "kubemigrate.applicationRules" -}}
# application: the operator's own resources; kopf patches them for its finalizer and progress
# annotations, the controller reads them.
- apiGroups: ["kubemigrate.dev"]
  resources: ["migrations", "databasebackups", "databaserestores", "databasebackupschedules", "migrationsets"]
  verbs: ["get", "list", "watch", "patch", "update"]
# application: a Migration's pre-migration backup and its rollback's restore are created by the
# operator, and so are a DatabaseBackupSchedule's backups; retention (keepLast, ttl, a
# schedule's history limits) deletes backups.
- apiGroups: ["kubemigrate.dev"]
  resources: ["databasebackups", "databaserestores"]
  verbs: ["create", "delete"]
# application: status is written through the status subresource.
- apiGroups: ["kubemigrate.dev"]
  resources: ["migrations/status", "databasebackups/status", "databaserestores/status", "databasebackupschedules/status", "migrationsets/status"]
  verbs: ["get", "patch", "update"]
# application: Jobs are owned by these resources with blockOwnerDeletion, which needs update on
# the owner's finalizers subresource (OwnerReferencesPermissionEnforcement).
- apiGroups: ["kubemigrate.dev"]
  resources: ["migrations/finalizers", "databasebackups/finalizers", "databaserestores/finalizers", "databasebackupschedules/finalizers", "migrationsets/finalizers"]
  verbs: ["update"]
# application: preflight, backup and restore Jobs.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete", "deletecollection"]
# application: Job pods' termination messages carry their JSON results.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# application: preflight plans, spec.sqlFrom sources and a MigrationSet's source ConfigMaps;
# a fleet's wave ledgers, which its workers update (so the operator must hold update to grant
# it) and the operator patches (pause, closed).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "delete", "update", "patch"]
# application: a fleet wave's identity: a ServiceAccount per wave, bound to a Role that names
# exactly the wave's Secrets and its ledger (RBAC lets the operator grant only what it holds).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "create", "delete"]
# application: backup volumes.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create"]
# framework (kopf): Events about the resources it handles (kopf posts core/v1 Events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The Secret rule: get only (database URLs), list only when asked, never watch. */}}
{{- define "kubemigrate.secretRules" -}}
# application: the database URL of a resource's spec.database.secretRef; `get` only, never
# watch, so the operator can read a Secret it is pointed at but not enumerate them; `list` only
# with rbac.secrets.list (a fleet's spec.targets.secretSelector, listed as metadata only).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: {{ if .Values.rbac.secrets.list }}["get", "list"]{{ else }}["get"]{{ end }}
{{- end }}
