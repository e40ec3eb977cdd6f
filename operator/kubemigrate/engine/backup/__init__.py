"""Backing up: pg_dump and pg_restore, dump files and their sidecars, verification, row counts."""
