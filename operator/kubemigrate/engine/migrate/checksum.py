"""The checksum that detects drift: an applied migration whose SQL has since changed.

``sha256:<hex>`` of the forward SQL encoded as UTF-8, after turning CRLF line ends into LF, so
a checkout with Windows line endings (git's ``core.autocrlf``) does not read as drift while any
other change, whitespace and comments included, does: the text is what ran, and a checksum that
forgives edits would hide them. The prefix names the algorithm so a later change of algorithm
can be told apart from drift.
"""

from __future__ import annotations

import hashlib

ALGORITHM = "sha256"


def normalise_sql(sql: str) -> str:
    """The text the checksum is taken over: line ends made LF, nothing else touched."""
    return sql.replace("\r\n", "\n")


def sql_checksum(sql: str) -> str:
    """``"sha256:<64 hex digits>"`` of the normalised SQL."""
    digest = hashlib.sha256(normalise_sql(sql).encode("utf-8")).hexdigest()
    return f"{ALGORITHM}:{digest}"
