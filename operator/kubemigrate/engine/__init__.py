"""The migration engine: PostgreSQL only, no Kubernetes code (enforced by import-linter)."""
