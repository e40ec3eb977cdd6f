"""Where backups are kept: a one-of object, a PersistentVolumeClaim or object storage (S3 and
S3-compatible servers)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from kubemigrate.models.base import DataKey, ObjectName, SpecModel, cel, exactly_one, validations

STORAGE_KINDS = ("persistentVolumeClaim", "objectStore")
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


BucketName = Annotated[
    str,
    StringConstraints(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
]
Endpoint = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$"),
]
Region = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]


class ObjectStoreCredentials(SpecModel):
    """A Secret with an access key pair; the Job gets its values through env, nothing else does."""

    name: ObjectName = Field(description="Name of the Secret, in this resource's namespace.")
    access_key_id_key: DataKey = Field(
        "AWS_ACCESS_KEY_ID",
        description="Key holding the access key id. Default: AWS_ACCESS_KEY_ID.",
    )
    secret_access_key_key: DataKey = Field(
        "AWS_SECRET_ACCESS_KEY",
        description="Key holding the secret access key. Default: AWS_SECRET_ACCESS_KEY.",
    )
    session_token_key: DataKey | None = Field(
        None, description="Key holding a session token, for temporary credentials. Optional."
    )


class ObjectStoreStorage(SpecModel):
    """An S3 bucket (AWS or any S3-compatible server); backups are objects under prefix."""

    bucket: BucketName = Field(description="Name of the bucket. Required.")
    prefix: RelativePath | None = Field(
        None,
        description=(
            "Key prefix to keep the backups under, e.g. 'prod/orders'. Relative, '/'-separated, "
            "without '.' or '..' segments. Default: the bucket's root."
        ),
        json_schema_extra=validations(
            cel(
                "!self.split('/').exists(s, s == '.' || s == '..')",
                "prefix must not contain '.' or '..' segments",
            )
        ),
    )
    region: Region | None = Field(None, description="The bucket's region, e.g. eu-west-1.")
    endpoint: Endpoint | None = Field(
        None,
        description=(
            "URL of an S3-compatible server (MinIO, Ceph, R2, ...), e.g. "
            "https://minio.example:9000. Default: AWS S3."
        ),
    )
    force_path_style: bool = Field(
        False,
        description=(
            "Address the bucket in the path (https://host/bucket/key) rather than the host name: "
            "what most S3-compatible servers need. Default: false."
        ),
    )
    secret_ref: ObjectStoreCredentials | None = Field(
        None,
        description=(
            "Secret with the access key pair. Without it the backup Job relies on its "
            "environment: the pod's workload identity (IRSA, EKS Pod Identity, instance role) "
            "through the operator's job ServiceAccount."
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
    object_store: ObjectStoreStorage | None = Field(
        None,
        description=(
            "Keep the backup in object storage: streamed up in parts as pg_dump writes, with "
            "its sha256 sidecar beside it."
        ),
    )

    @model_validator(mode="after")
    def _one_kind(self) -> BackupStorage:
        if (self.persistent_volume_claim is None) == (self.object_store is None):
            raise ValueError("storage needs exactly one of: " + ", ".join(STORAGE_KINDS))
        return self
