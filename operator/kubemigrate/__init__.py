"""kubemigrate: safe PostgreSQL migrations and backups, as a CLI and a Kubernetes operator."""

__version__ = "0.1.0"
