"""Helm chart tests: lint, server-side dry runs and RBAC against the real API server."""
