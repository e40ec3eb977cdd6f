"""Where a fleet target's database is: its own Secret's URL, or a schema of a shared database.

The worker reads Secrets through the API with its wave's token, whose Role names exactly the
wave's Secrets. Whatever goes wrong with a target (no Secret, no key, a value that is no
PostgreSQL URL, no such schema) is that target's failure, ``TargetFailed`` with a reason and a
message that names the Secret and key but never quotes a value.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from kubemigrate import engine
from kubemigrate.cli.incluster import ApiError, InCluster, object_path
from kubemigrate.engine import ConnectionFailed, InvalidUrl


class TargetFailed(Exception):
    """A target that cannot be run: why (a status reason) and a message with no secret."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Resolved:
    """A target's database URL, where its history lives, and what output must mask."""

    url: str = field(repr=False)
    history_schema: str
    secrets: tuple[str, ...] = field(repr=False)


def secret_url(api: InCluster, namespace: str, secret: str, key: str) -> str:
    """The database URL under key of the Secret, checked to be one (TargetFailed if not)."""
    try:
        found = api.get(object_path(namespace, "secrets", secret))
    except ApiError as exc:
        if exc.status == 404:
            raise TargetFailed("SecretNotFound", f"Secret {secret} not found") from None
        if exc.status == 403:
            why = f"the wave's ServiceAccount may not read Secret {secret}"
            raise TargetFailed("SecretForbidden", why) from None
        raise
    raw = (found.get("data") or {}).get(key)
    if not isinstance(raw, str):
        raise TargetFailed("SecretKeyNotFound", f"Secret {secret} has no key {key}")
    not_a_url = f"Secret {secret} key {key}: the value is not a PostgreSQL URL"
    try:
        url = base64.b64decode(raw, validate=True).decode("utf-8")
        engine.check_url(url)
    except (binascii.Error, UnicodeDecodeError, InvalidUrl):
        raise TargetFailed(InvalidUrl.reason, not_a_url) from None
    return url


class SecretTargets:
    """Database per tenant: target name = Secret name, its URL under key."""

    def __init__(self, api: InCluster, namespace: str, key: str, history_schema: str) -> None:
        self.api, self.namespace, self.key = api, namespace, key
        self.history_schema = history_schema

    def resolve(self, name: str) -> Resolved:
        url = secret_url(self.api, self.namespace, name, self.key)
        return Resolved(url, self.history_schema, engine.secrets_of(url))


class SchemaTargets:
    """Schema per tenant: target name = schema name in the shared Secret's database, run with
    its search_path and its history in that schema. The Secret is read once."""

    def __init__(self, api: InCluster, namespace: str, secret: str, key: str) -> None:
        self.api, self.namespace, self.secret, self.key = api, namespace, secret, key
        self._url: str | TargetFailed | None = None

    def shared_url(self) -> str:
        if self._url is None:
            try:
                self._url = secret_url(self.api, self.namespace, self.secret, self.key)
            except TargetFailed as exc:
                self._url = exc
        if isinstance(self._url, TargetFailed):
            raise TargetFailed(self._url.reason, self._url.message)
        return self._url

    def resolve(self, name: str) -> Resolved:
        base = self.shared_url()
        secrets = engine.secrets_of(base)
        try:
            exists = engine.schema_exists(base, name)
        except ConnectionFailed as exc:
            raise TargetFailed(exc.reason, engine.redact(str(exc), *secrets)) from None
        if not exists:
            raise TargetFailed("SchemaNotFound", f"schema {name} does not exist")
        url = engine.in_schema(base, name)
        return Resolved(url, name, (*secrets, *engine.secrets_of(url)))
