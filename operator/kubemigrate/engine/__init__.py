"""The migration engine: PostgreSQL only, no Kubernetes code (enforced by import-linter).

The public API is ``Engine`` (``kubemigrate.engine.engine``), the records it returns
(``kubemigrate.engine.results``) and the errors it raises (``kubemigrate.engine.errors``).
Submodules are imported on their own, so reading sources does not load the database driver.
"""
