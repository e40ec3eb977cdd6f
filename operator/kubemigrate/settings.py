"""The operator's one settings object, read from `KUBEMIGRATE_*` environment variables.

Every tunable lives here so that the Helm chart, the Deployment and the docs name the same
variables, and handlers never read the environment themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "KUBEMIGRATE_"


class Settings(BaseModel):
    """How the operator runs; each field is the lower-cased name after `KUBEMIGRATE_`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field(
        "ghcr.io/kubemigrate/kubemigrate:0.1.0",
        description="the image of preflight, backup and restore Jobs",
    )
    image_pull_policy: str = Field("IfNotPresent", description="pull policy of Job pods")
    job_service_account: str | None = Field(
        None, description="ServiceAccount of Job pods; the namespace's default when unset"
    )
    job_active_deadline_seconds: int = Field(
        600, ge=1, description="deadline of a preflight Job; it ends Failed after it"
    )
    job_ttl_seconds_after_finished: int = Field(
        3600, ge=0, description="how long finished Jobs stay for inspection"
    )
    job_backoff_limit: int = Field(0, ge=0, description="retries of a failed preflight Job")
    lock_wait_seconds: float = Field(
        30.0, gt=0, description="how long to wait for the per-database advisory lock"
    )
    lock_timeout_seconds: float = Field(
        2.0, gt=0, description="default lock_timeout inside a migration's transaction"
    )
    statement_timeout_seconds: float = Field(
        0.0, ge=0, description="default statement_timeout (0: none)"
    )
    retry_min_seconds: float = Field(
        1.0, gt=0, description="first delay before retrying after a transient failure"
    )
    retry_max_seconds: float = Field(
        60.0, gt=0, description="the cap of the exponential retry delay"
    )
    login_attempts: int = Field(
        10,
        ge=1,
        description="refused logins in a row (a wrong password, a Secret value that is no "
        "PostgreSQL URL) before a Migration or DatabaseBackup is Failed and Stalled",
    )
    metrics_port: int = Field(8080, ge=0, description="Prometheus metrics port (0: off)")
    namespaced: bool = Field(
        False,
        description="the operator watches one namespace and may read nothing "
        "cluster-wide: skip kopf's scan of CRDs and namespaces",
    )
    schedule_seconds: bool = Field(
        False,
        description="accept DatabaseBackupSchedules with a sixth, leading seconds field "
        "(for tests and demos: a real clock, firing every few seconds)",
    )
    verbose: bool = Field(
        False, description="log every handler call (kopf's per-object INFO lines)"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment; invalid values raise a pydantic ValidationError."""
        source = os.environ if env is None else env
        values = {
            k[len(PREFIX) :].lower(): v
            for k, v in source.items()
            if k.startswith(PREFIX) and v != ""
        }
        # Variables that configure other parts (tests, the CLI) share the prefix; skip them.
        values = {k: v for k, v in values.items() if k in cls.model_fields}
        return cls.model_validate(values)
