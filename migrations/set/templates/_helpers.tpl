{{/* The ConfigMap's name: the release and a hash of every migration file, as kustomize does, so
a changed file is a changed MigrationSet spec (a new run) and the old ConfigMap is left intact. */}}
{{- define "orders-migrations.configMap" -}}
{{ .Release.Name }}-migrations-{{ (.Files.Glob "sql/*.sql").AsConfig | sha256sum | trunc 10 }}
{{- end -}}
