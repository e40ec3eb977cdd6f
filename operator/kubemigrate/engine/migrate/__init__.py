"""Migrating: read sources, plan, take the lock, run each migration with its history row."""
