"""No password survives redaction, in URLs, DSNs, or as an explicitly given secret."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from kubemigrate.engine.pg.redact import mask_url, redact


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:****@db:5432/app"),
        (
            "postgres://app:s3cret@db/app?sslmode=require",
            "postgres://app:****@db/app?sslmode=require",
        ),
        ("postgresql://app:p%40ss@db/app", "postgresql://app:****@db/app"),
        ("postgresql://app:p@ss@db/app", "postgresql://app:****@db/app"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("postgresql://db/app", "postgresql://db/app"),
        ("postgresql://app:@db/app", "postgresql://app:****@db/app"),
        (
            "postgresql://db/app?user=a&password=s3cret&sslmode=require",
            "postgresql://db/app?user=a&password=****&sslmode=require",
        ),
        (
            "host=db user=app password=s3cret dbname=app",
            "host=db user=app password=**** dbname=app",
        ),
        ("host=db password='s3 cret' dbname=app", "host=db password=**** dbname=app"),
        ("host=db PASSWORD = s3cret", "host=db PASSWORD = ****"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


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
