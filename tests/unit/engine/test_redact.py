"""No password survives redaction, in URLs, DSNs, or as an explicitly given secret."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from kubemigrate.engine.pg.redact import redact


def test_redact_masks_urls_inside_text() -> None:
    text = (
        "connection to postgresql://app:s3cret@db/app failed; retrying "
        "postgresql://other:hunter2@db2/x"
    )
    out = redact(text)
    assert "s3cret" not in out and "hunter2" not in out
    assert "postgresql://app:****@db/app failed" in out


def test_redact_masks_dsn_passwords_inside_text() -> None:
    out = redact("could not connect with 'host=db password=s3cret user=app'")
    assert "s3cret" not in out
    assert "user=app" in out


@pytest.mark.parametrize("secret", ["s3cret", "p@ss/wörd", "a b"])
def test_redact_masks_given_secrets_and_their_url_encoding(secret: str) -> None:
    text = f"password was {secret} or {quote(secret, safe='')} in a url"
    out = redact(text, secret)
    assert secret not in out and quote(secret, safe="") not in out


def test_redact_ignores_empty_secrets_and_leaves_plain_text() -> None:
    assert redact("nothing to hide", "") == "nothing to hide"
