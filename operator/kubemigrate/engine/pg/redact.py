"""Keep database passwords out of everything kubemigrate prints, logs or writes to a status.

Connection strings reach error messages in many ways (a driver's exception, a stack trace, a
user's own SQL), so the CLI and the operator pass all outward text through ``redact``. It is the
second line of defence: errors about a connection are built without the string in the first
place (``target``), since no pattern can find a value that is no URL (a token, a password).
"""

from __future__ import annotations

import re
from urllib.parse import quote

MASK = "****"

# scheme://user:password@host...  The password runs to the last '@' before the path or a space,
# so an unencoded '@' inside it is still masked.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<pw>[^\s/]*)@")
# password=... in key=value DSNs and URL query strings; quoted values may hold spaces.
_KV_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pgpassword)\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\"[^\"]*\"|[^\s&]+)",
    re.IGNORECASE,
)


def redact(text: str, *secrets: str) -> str:
    """text with passwords in any URLs or DSNs it contains, and every given secret, masked.

    Each secret is also masked in its percent-encoded form, the way it appears inside a URL.
    Empty secrets are ignored.
    """
    out = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    out = _KV_PASSWORD.sub(_mask_kv, out)
    forms = {form for s in secrets if s for form in (s, quote(s, safe=""))}
    for form in sorted(forms, key=len, reverse=True):
        out = out.replace(form, MASK)
    return out


def _mask_kv(m: re.Match[str]) -> str:
    return f"{m['head']}{MASK}"
