"""Label values from object names, one rule for the labels we write and the selectors we read.

A name may be 253 characters, a label value at most 63, starting and ending with an
alphanumeric: cut to 63 and trim what a cut may leave at the end, or the API refuses the object.
"""

from __future__ import annotations


def label_value(name: str) -> str:
    """name as a valid label value (names of one object kind that share their first 63
    characters share it too: a selector on it is a filter, never the identity)."""
    return name[:63].rstrip("-._")
