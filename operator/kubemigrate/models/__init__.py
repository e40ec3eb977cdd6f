"""pydantic models of the custom resources; crds/ is generated from them (``make crds``).

One model per kind, reused by the operator (to read and write objects), the CLI (to check
manifests offline, with the same messages as the API server) and the CRD generator. The API
group and version are defined here once (in `base`) for everyone.
"""

from kubemigrate.models.backup import DatabaseBackup
from kubemigrate.models.base import API_VERSION, GROUP, VERSION
from kubemigrate.models.migration import Migration
from kubemigrate.models.migration_set import MigrationSet
from kubemigrate.models.restore import DatabaseRestore
from kubemigrate.models.schedule import DatabaseBackupSchedule

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "DatabaseBackup",
    "DatabaseBackupSchedule",
    "DatabaseRestore",
    "Migration",
    "MigrationSet",
]
