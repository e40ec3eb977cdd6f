"""kopf's diff base kept as a digest, not as a copy of the spec.

kopf remembers the last handled state of every object to tell an update from a mere re-listing;
by default it writes the whole spec into an annotation. The API server refuses annotations over
256 KiB in total, and a Migration's SQL may be 1 MiB: such a Migration could be created but its
finalizer never released, so it (and its namespace) stayed Terminating. Our handlers never look
at kopf's diffs (the daemons read the object itself), so a sha256 of the same essence is all the
comparison needs, and it is the same 80 bytes at any size. An annotation in the old format
(the essence itself) differs from every digest, so kopf replaces it on its next look.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff base, holding {"digest": "sha256:..."} of the essence."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        return cast(kopf.BodyEssence, {"digest": digest(essence)})


def digest(essence: Any) -> str:
    """sha256 of the essence's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(essence, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
