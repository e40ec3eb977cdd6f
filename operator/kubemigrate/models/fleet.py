"""The fleet parts of a MigrationSet: many targets instead of one database, and how to roll out.

A target is a database (a Secret matched by a label selector) or a schema in one database. The
rollout runs a canary first, then at most ``maxParallel`` targets at once, and halts once more
than ``maxFailures`` have failed. Status holds counts and the first failures, never one entry
per target, so a fleet of 10,000 tenants fits in one object.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from kubemigrate.models.base import DataKey, SpecModel, StatusModel, cel, exactly_one, validations
from kubemigrate.models.common import DatabaseRef

MAX_SCHEMA_NAMES = 10000
MAX_FAILED_TARGETS = 20
"""Failed targets listed in status (the first ones); the rest are counted."""
MAX_LABELS = 32
MAX_QUERY = 4096
ONE_KIND = "exactly one of spec.targets.secretSelector and spec.targets.schemas must be set"
ONE_LIST = "exactly one of spec.targets.schemas.names and spec.targets.schemas.query must be set"
SCHEMA_PATTERN = r"^[a-z_][a-z0-9_$]{0,62}$"
LABEL_KEY = Annotated[
    str,
    StringConstraints(min_length=1, max_length=317, pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9_.-]+$"),
]
LABEL_VALUE = Annotated[
    str,
    StringConstraints(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"),
    Field(description="A label value."),
]
SchemaName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=SCHEMA_PATTERN)]


class SelectorRequirement(SpecModel):
    """One matchExpressions entry, as in any Kubernetes label selector."""

    key: LABEL_KEY = Field(description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[LABEL_VALUE] = Field(
        default_factory=list, description="Values for In and NotIn.", max_length=MAX_LABELS
    )


class SecretSelector(SpecModel):
    """A label selector over the Secrets of the namespace; an empty selector is refused."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
                "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
                "spec.targets.secretSelector must name at least one label: an empty selector "
                "would take every Secret of the namespace",
            )
        )
    )

    match_labels: dict[str, LABEL_VALUE] | None = Field(
        None, description="Labels every target Secret has.", max_length=MAX_LABELS
    )
    match_expressions: list[SelectorRequirement] | None = Field(
        None, description="Label requirements every target Secret meets.", max_length=MAX_LABELS
    )

    @model_validator(mode="after")
    def _not_empty(self) -> SecretSelector:
        if not self.match_labels and not self.match_expressions:
            raise ValueError("an empty secretSelector would take every Secret of the namespace")
        return self

    def as_string(self) -> str:
        """The selector in the API's ``labelSelector`` query form."""
        parts = [f"{k}={v}" for k, v in sorted((self.match_labels or {}).items())]
        for req in self.match_expressions or []:
            if req.operator == "Exists":
                parts.append(req.key)
            elif req.operator == "DoesNotExist":
                parts.append(f"!{req.key}")
            else:
                verb = "in" if req.operator == "In" else "notin"
                parts.append(f"{req.key} {verb} ({','.join(req.values)})")
        return ",".join(parts)


class SchemaTargets(SpecModel):
    """Schemas of one database, each a target with its own search_path and history table."""

    model_config = ConfigDict(
        json_schema_extra=validations(cel(exactly_one("names", "query"), ONE_LIST))
    )

    database: DatabaseRef = Field(description="The database that holds the schemas.")
    names: list[SchemaName] | None = Field(
        None,
        description="The schemas, by name.",
        min_length=1,
        max_length=MAX_SCHEMA_NAMES,
    )
    query: str | None = Field(
        None,
        description=(
            "A query returning schema names in its first column, run read-only in the database "
            "at the start of each rollout and at each resync, e.g. SELECT nspname FROM "
            "pg_namespace WHERE nspname LIKE 'tenant\\_%'."
        ),
        min_length=1,
        max_length=MAX_QUERY,
    )

    @model_validator(mode="after")
    def _one(self) -> SchemaTargets:
        if (self.names is None) == (self.query is None):
            raise ValueError(ONE_LIST)
        return self


class Targets(SpecModel):
    """Many databases (one per matching Secret) or many schemas of one database."""

    model_config = ConfigDict(
        json_schema_extra=validations(cel(exactly_one("secretSelector", "schemas"), ONE_KIND))
    )

    secret_selector: SecretSelector | None = Field(
        None, description="Each Secret of the namespace matching it is one database."
    )
    key: DataKey = Field(
        "url", description="The key of each selected Secret holding its URL. Default: url."
    )
    schemas: SchemaTargets | None = Field(None, description="Schemas of one database.")

    @model_validator(mode="after")
    def _one(self) -> Targets:
        if (self.secret_selector is None) == (self.schemas is None):
            raise ValueError(ONE_KIND)
        return self


class Rollout(SpecModel):
    """How a fleet is migrated: a canary alone, then waves, halting on failures."""

    canary: int = Field(
        1, description="Targets migrated first, alone; the rest wait for them. Default: 1.", ge=0
    )
    max_parallel: int = Field(
        5, description="Targets migrated at once after the canary. Default: 5.", ge=1, le=1000
    )
    max_failures: int = Field(
        0,
        description="Failed targets tolerated; past it the rollout is Halted. Default: 0.",
        ge=0,
    )
    paused: bool = Field(
        False, description="true: start no new target (running ones finish); false: go on."
    )


class TargetCounts(StatusModel):
    """How many targets are in each state, for the current rollout."""

    total: int = Field(0, description="Targets resolved.")
    succeeded: int = Field(0, description="Targets at the rollout's target version.")
    failed: int = Field(0, description="Targets whose run failed.")
    running: int = Field(0, description="Targets being migrated now.")
    pending: int = Field(0, description="Targets not started yet.")


class FailedTarget(StatusModel):
    """One failed target and why (never a Secret value)."""

    name: str = Field(description="The Secret or schema name.")
    version: str | None = Field(None, description="The version it is at, or that failed.")
    sqlstate: str | None = Field(None, description="PostgreSQL's SQLSTATE, if any.")
    message: str = Field(description="What went wrong.")
