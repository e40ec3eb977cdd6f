"""Base classes and helpers shared by every resource model.

Python attributes are snake_case; the YAML the cluster stores is camelCase, so every model
parses either spelling and dumps camelCase with ``model_dump(by_alias=True)``. Spec models refuse
unknown fields, as the API server does under ``kubectl apply``'s strict field validation; status
models ignore them so an older CLI can still read the status a newer operator wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

GROUP = "kubemigrate.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
"""An object name (RFC 1123 subdomain): what Secrets, ConfigMaps, PVCs and our kinds accept."""

NAME_MAX_LENGTH = 253

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""``500ms``, ``5s``, ``30m``, ``1h30m``: a subset of what the engine's parse_duration reads."""

DURATION_MAX_LENGTH = 32

ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)
]
DataKey = Annotated[
    str, StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH, pattern=r"^[-._a-zA-Z0-9]+$")
]
"""A Secret or ConfigMap data key, as Kubernetes accepts them."""
Duration = Annotated[
    str, StringConstraints(min_length=1, max_length=DURATION_MAX_LENGTH, pattern=DURATION_PATTERN)
]

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")


def duration_seconds(text: str) -> float:
    """The seconds of a Duration (``1h30m`` -> 5400.0), as CEL's ``duration()`` reads it."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def at_most(limit: str, what: str) -> tuple[AfterValidator, Any]:
    """The metadata of a Duration of at most limit (``"1h"``): the Python check, and the CRD's
    CEL rule, both refusing a longer one with ``<what> must be at most <limit>``.

        LockTimeout = Annotated[Duration, *at_most("1h", "timeouts.lock")]
    """
    message = f"{what} must be at most {limit}"
    most = duration_seconds(limit)

    def check(value: str) -> str:
        if duration_seconds(value) > most:
            raise ValueError(message)
        return value

    rule = cel(f"duration(self) <= duration('{limit}')", message)
    return AfterValidator(check), Field(json_schema_extra=validations(rule))


def _to_milliseconds(seconds: float) -> float:
    return round(seconds, 3)


Seconds = Annotated[float, Field(ge=0), AfterValidator(_to_milliseconds)]
"""A duration in seconds, kept to milliseconds so the Duration column reads 1.234, not 1.2345678."""

WORDS = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class SpecModel(BaseModel):
    """A part of a spec: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(**WORDS, extra="forbid")


class StatusModel(BaseModel):
    """A part of a status: camelCase aliases, unknown fields ignored (written by the operator)."""

    model_config = ConfigDict(**WORDS, extra="ignore")


class ObjectMeta(BaseModel):
    """The standard object metadata; only the fields the operator reads are typed."""

    model_config = ConfigDict(**WORDS, extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


def cel(
    rule: str,
    message: str,
    *,
    field_path: str | None = None,
    reason: str | None = None,
) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry; message is what ``kubectl apply`` prints."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """A ``json_schema_extra`` carrying CEL rules, so each rule sits next to what it guards."""
    return {"x-kubernetes-validations": list(rules)}


def exactly_one(*fields: str) -> str:
    """A CEL rule that holds when exactly one of the named fields of ``self`` is set."""
    if len(fields) == 1:
        return f"has(self.{fields[0]})"
    if len(fields) == 2:
        return f"has(self.{fields[0]}) != has(self.{fields[1]})"
    listed = ", ".join(f"has(self.{f})" for f in fields)
    return f"[{listed}].filter(x, x).size() == 1"


def column(
    name: str, type_: str, json_path: str, description: str, *, priority: int = 0
) -> dict[str, Any]:
    """One ``additionalPrinterColumns`` entry (priority 1 shows only with ``-o wide``)."""
    entry: dict[str, Any] = {
        "name": name,
        "type": type_,
        "jsonPath": json_path,
        "description": description,
    }
    if priority:
        entry["priority"] = priority
    return entry


AGE = column("Age", "date", ".metadata.creationTimestamp", "Time since the resource was created.")


@dataclass(frozen=True)
class Resource:
    """What a CRD needs beyond the schema: the kind's model, its names and its printer columns."""

    model: type[BaseModel]
    kind: str
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[dict[str, Any], ...]
    categories: tuple[str, ...] = ("kubemigrate",)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"
