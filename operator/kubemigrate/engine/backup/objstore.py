"""Backups in object storage: ``s3://bucket/prefix/name`` locations, through obstore.

obstore (the Rust ``object_store`` crate, no Python dependencies) signs and retries the requests;
credentials and the endpoint come from the standard environment of S3 clients, read by obstore
itself: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``, ``AWS_VIRTUAL_HOSTED_STYLE_REQUEST`` (path-style requests unless true), or
the pod's workload identity (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``, EKS Pod
Identity's ``AWS_CONTAINER_CREDENTIALS_FULL_URI``, or the instance metadata service).

Every error that leaves here is one line with the values of the credential variables masked:
S3 error bodies can quote the access key id, and a message must never carry a Secret's value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import obstore
from obstore import exceptions as obx
from obstore.store import S3Store

from kubemigrate.engine.errors import BackupError, InvalidBackup, StorageDenied, StorageError
from kubemigrate.engine.pg.redact import redact

SCHEME = "s3://"
SIDECAR_SUFFIX = ".meta.json"
PART_SIZE = 16 << 20
"""Bytes per multipart part (S3's minimum is 5 MiB): memory used per concurrent part."""
READ_RANGE = 64 << 20
"""Bytes per ranged GET: each request is bounded, so a slow reader never trips a timeout."""
CONCURRENCY = 4
SECRET_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_MAX_MESSAGE = 400
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class ObjectLocation:
    """A backup's object: bucket and key. Its sidecar is the key plus ``.meta.json``."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def sidecar_key(self) -> str:
        return self.key + SIDECAR_SUFFIX

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def is_remote(text: object) -> bool:
    """Whether a backup location given on a command line or in a spec names an object."""
    return isinstance(text, ObjectLocation) or str(text).startswith(SCHEME)


def parse(text: str) -> ObjectLocation:
    """``s3://bucket/prefix/name`` -> ObjectLocation; BackupError for anything malformed."""
    if not text.startswith(SCHEME):
        raise BackupError(f"not an object-storage location (want {SCHEME}bucket/key): {text}")
    bucket, _, key = text[len(SCHEME) :].partition("/")
    if not _BUCKET.match(bucket):
        raise BackupError(f"{text}: {bucket!r} is not a valid S3 bucket name")
    if not key or key.endswith("/") or "//" in key:
        raise BackupError(f"{text}: give the object's key after the bucket, e.g. s3://b/dir/x.dump")
    if any(part in (".", "..") for part in key.split("/")):
        raise BackupError(f"{text}: '.' and '..' are not allowed in a key")
    return ObjectLocation(bucket, key)


def open_store(bucket: str) -> S3Store:
    """A store for bucket, configured from the environment (see the module docstring)."""
    endpoint = _endpoint()
    client: dict[str, Any] = {"connect_timeout": timedelta(seconds=10), "timeout": "300s"}
    if endpoint and endpoint.startswith("http://"):
        client["allow_http"] = True
    config: dict[str, Any] = {}
    if endpoint:
        config["endpoint"] = endpoint
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        config["region"] = "us-east-1"  # S3-compatible servers ignore it; AWS redirects
    try:
        return S3Store(
            bucket,
            config=config,  # type: ignore[arg-type]
            client_options=client,  # type: ignore[arg-type]
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=60)},
        )
    except Exception as exc:  # obstore's configuration errors: a bad variable's name, not value
        raise StorageError(f"cannot use object storage: {clean(exc)}") from None


def _endpoint() -> str | None:
    env = os.environ
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT")


def clean(exc: BaseException) -> str:
    """exc's message: one line, credential values masked, shortened."""
    secrets = [v for name in SECRET_VARIABLES if (v := os.environ.get(name))]
    text = " ".join(str(exc).split("Debug source:", 1)[0].split())
    text = redact(text, *secrets)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def storage_error(exc: BaseException, where: ObjectLocation, doing: str) -> BackupError:
    """The engine error for an obstore exception, naming the object and what was being done."""
    if isinstance(exc, (obx.NotFoundError, FileNotFoundError)):
        return InvalidBackup(f"{where} does not exist")
    denied = (obx.PermissionDeniedError, obx.UnauthenticatedError, PermissionError)
    if isinstance(exc, denied) or _denied(exc):
        return StorageDenied(
            f"object storage refused {doing} {where} {_which_credentials()}: check the "
            f"credentials and the bucket's policy ({_code(exc)})"
        )
    return StorageError(f"object storage failed {doing} {where}: {clean(exc)}")


IDENTITY_VARIABLES = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def _which_credentials() -> str:
    """Which credentials were used, by name only."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return "with the access key in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    if any(os.environ.get(name) for name in IDENTITY_VARIABLES):
        return "with the workload identity"
    return "without credentials (no AWS_ACCESS_KEY_ID, no workload identity found)"


_DENIED_CODES = (
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "Forbidden",
    "403",
)


def _denied(exc: BaseException) -> bool:
    text = str(exc)
    return any(code in text for code in _DENIED_CODES) or "credential" in text.lower()


def _code(exc: BaseException) -> str:
    """The S3 error code in exc's message, never the rest (which may quote a key id)."""
    for code in _DENIED_CODES[:-2]:
        if code in str(exc):
            return code
    if "credential" in str(exc).lower():
        return "no usable credentials found"
    return "403 Forbidden"


@contextmanager
def translated(where: ObjectLocation, doing: str) -> Iterator[None]:
    """Turn obstore's exceptions raised in the block into engine errors."""
    try:
        yield
    except (obx.BaseError, OSError, RuntimeError) as exc:
        if isinstance(exc, BackupError):
            raise
        raise storage_error(exc, where, doing) from None


def size_of(store: S3Store, where: ObjectLocation, key: str | None = None) -> int | None:
    """The size of an object (the backup's by default); None when it does not exist."""
    try:
        with translated(where, "reading"):
            try:
                return int(obstore.head(store, key or where.key)["size"])
            except (obx.NotFoundError, FileNotFoundError):
                return None
    except InvalidBackup:
        return None


def read_text(store: S3Store, where: ObjectLocation, key: str) -> str | None:
    """A small object's text (a sidecar); None when it does not exist."""
    with translated(where, "reading"):
        try:
            return bytes(obstore.get(store, key).bytes()).decode("utf-8")
        except (obx.NotFoundError, FileNotFoundError):
            return None


def write_text(store: S3Store, where: ObjectLocation, key: str, text: str) -> None:
    with translated(where, "writing"):
        obstore.put(store, key, text.encode("utf-8"), use_multipart=False)


def chunks(store: S3Store, where: ObjectLocation, size: int) -> Iterator[bytes]:
    """The object's bytes in order, fetched in bounded ranged GETs."""
    offset = 0
    while offset < size:
        end = min(offset + READ_RANGE, size)
        with translated(where, "reading"):
            got = obstore.get(store, where.key, options={"range": (offset, end)})
            for piece in got.stream(min_chunk_size=1 << 20):
                yield bytes(piece)
        offset = end


def delete(store: S3Store, where: ObjectLocation, keys: list[str]) -> list[str]:
    """Delete the keys that exist; the ones deleted."""
    gone = []
    for key in keys:
        if size_of(store, where, key) is None:
            continue
        with translated(where, "deleting"):
            obstore.delete(store, key)
        gone.append(key)
    return gone


def delete_backup(where: ObjectLocation) -> list[str]:
    """Delete a backup's object and its sidecar (sidecar last: while the object exists, its
    sidecar says what it is). Returns the keys removed; none there is not an error."""
    store = open_store(where.bucket)
    return delete(store, where, [where.key, where.sidecar_key])
