"""Where a connection string points, said without saying the string.

The value of a database Secret key may be anything: a URL with a password, a key=value string,
or, when a resource names the wrong key, a token or a password of something else entirely. The
driver's own errors quote what they could not read (``missing "=" after "<value>"``, ``invalid
port number: "<value>"``), so no message here is built from the string. A connection error
names the database by the parts that are safe to show (host, port, database, user: each only
when it looks like one), the driver's reason has every other part of the string masked, and a
value that does not parse is only said not to be a PostgreSQL URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

from psycopg import conninfo

from kubemigrate.engine.errors import AuthenticationFailed, ConnectionFailed, InvalidUrl
from kubemigrate.engine.pg.redact import redact

NOT_A_URL = (
    "the database URL is not a PostgreSQL URL (postgresql://...) nor a key=value connection string"
)

_SHOWN = {
    "host": re.compile(r"[A-Za-z0-9._:%/\[\]-]{1,255}(,[A-Za-z0-9._:%/\[\]-]{1,255})*"),
    "port": re.compile(r"[0-9]{1,5}(,[0-9]{1,5})*"),
    "dbname": re.compile(r"[A-Za-z0-9._$@+-]{1,63}"),
    "user": re.compile(r"[A-Za-z0-9._$@+-]{1,63}"),
}
"""The parts a message may show, and what each must look like to be shown."""

_ENUMERATED = {
    "sslmode": {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"},
    "gssencmode": {"disable", "prefer", "require"},
    "channel_binding": {"disable", "prefer", "require"},
    "target_session_attrs": {"any", "read-write", "read-only", "primary", "standby"},
    "load_balance_hosts": {"disable", "random"},
}
"""Settings whose valid values are no secret: masking ``require`` would garble messages."""

_SECRET_KEYS = frozenset({"password", "sslpassword", "oauth_client_secret"})

_AUTHENTICATION = re.compile(
    r"authentication failed|no pg_hba\.conf entry|pg_hba\.conf rejects|role \"[^\"]*\" does not"
    r" exist|no password supplied|password is required|SCRAM|server requested .* authentication",
    re.IGNORECASE,
)
"""libpq's and the server's words for a refused login (SQLSTATE 28P01 and 28000), which libpq
does not report as an SQLSTATE for errors during the connection's start-up."""


@dataclass(frozen=True)
class Target:
    """The showable parts of a parsed connection string (None: not given, or not safe to show),
    and every value of the string that output must mask."""

    host: str | None = None
    port: str | None = None
    dbname: str | None = None
    user: str | None = None
    hidden: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, url: str) -> Target | None:
        """The target of url, or None if url is no connection string at all."""
        try:
            parsed = conninfo.conninfo_to_dict(url)
        except Exception:  # psycopg.ProgrammingError, whose text quotes the value
            return None
        values = {k: str(v) for k, v in parsed.items() if v is not None and str(v) != ""}
        shown = {k: v for k, v in values.items() if k in _SHOWN and _SHOWN[k].fullmatch(v)}
        hidden = [url, url.strip()]
        hidden += [v for k, v in values.items() if k not in shown and not _plain(k, v)]
        return cls(
            host=shown.get("host"),
            port=shown.get("port"),
            dbname=shown.get("dbname"),
            user=shown.get("user"),
            hidden=tuple(dict.fromkeys(h for h in hidden if h)),
        )

    def __str__(self) -> str:
        """As a URL without a password: ``postgresql://app@db:5432/orders``."""
        host = self.host or ""
        if ":" in host and "," not in host:
            host = f"[{host}]"
        elif "/" in host:
            host = quote(host, safe="")
        netloc = (f"{quote(self.user, safe='')}@" if self.user else "") + host
        netloc += f":{self.port}" if self.port else ""
        path = f"/{quote(self.dbname, safe='')}" if self.dbname else ""
        return f"postgresql://{netloc}{path}"

    def mask(self, text: str) -> str:
        """text, on one line, with every hidden value of the string masked."""
        return _one_line(redact(_one_line(redact(text, *self.hidden)), *self.hidden))


def _plain(key: str, value: str) -> bool:
    """A setting whose value is no secret: a number, or one of its enumerated values."""
    return key not in _SECRET_KEYS and (
        (value.isdigit() and len(value) <= 10) or value in _ENUMERATED.get(key, ())
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def secrets_of(url: str) -> tuple[str, ...]:
    """Everything of url that output must mask: the whole string, its password, and each part
    a message may not show."""
    target = Target.of(url)
    if target is None:
        return tuple(dict.fromkeys(v for v in (url, url.strip()) if v))
    return target.hidden


def describe(url: str) -> str:
    """url as a message may name it: its safe parts, or that it is not a PostgreSQL URL."""
    target = Target.of(url)
    return str(target) if target is not None else "a value that is not a PostgreSQL URL"


def connection_failed(url: str, exc: BaseException) -> ConnectionFailed:
    """The error for a connection to url that failed with the driver's exc: one line naming the
    database by its safe parts, with the driver's reason masked. InvalidUrl (saying only that)
    when url does not parse; AuthenticationFailed when the server refused the login."""
    target = Target.of(url)
    if target is None:
        return InvalidUrl(f"cannot connect: {NOT_A_URL}")
    reason = target.mask(str(exc)).removeprefix("connection failed: ")
    kind = AuthenticationFailed if _AUTHENTICATION.search(reason) else ConnectionFailed
    return kind(f"cannot connect to {target}: {reason}")
