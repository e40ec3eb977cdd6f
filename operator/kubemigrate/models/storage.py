"""Where backups are kept: a one-of object, so object storage can join the PVC later."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from kubemigrate.models.base import ObjectName, SpecModel, cel, exactly_one, validations

STORAGE_KINDS = ("persistentVolumeClaim",)
"""The members of the one-of; a new kind of storage is one more optional field and entry here."""

RelativePath = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
    ),
]


class PersistentVolumeClaimStorage(SpecModel):
    """A PersistentVolumeClaim the backup Job mounts; backups are files under it."""

    claim_name: ObjectName = Field(
        description="Name of the PersistentVolumeClaim, in the same namespace as this resource."
    )
    path: RelativePath | None = Field(
        None,
        description=(
            "Directory under the volume's root to keep the backups in, e.g. 'prod/orders'. "
            "Relative, '/'-separated, without '.' or '..' segments. Default: the volume's root."
        ),
        json_schema_extra=validations(
            cel(
                "!self.split('/').exists(s, s == '.' || s == '..')",
                "path must not contain '.' or '..' segments",
            )
        ),
    )


class BackupStorage(SpecModel):
    """Where a backup is written. Exactly one kind of storage is set."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                exactly_one(*STORAGE_KINDS),
                "storage needs exactly one of: " + ", ".join(STORAGE_KINDS),
            )
        )
    )

    persistent_volume_claim: PersistentVolumeClaimStorage | None = Field(
        None, description="Keep the backup on a PersistentVolumeClaim."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> BackupStorage:
        if self.persistent_volume_claim is None:
            raise ValueError("storage needs exactly one of: " + ", ".join(STORAGE_KINDS))
        return self
