"""CLI tests: the real kubemigrate command against PostgreSQL."""
