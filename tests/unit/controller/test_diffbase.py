"""kopf's diff base is a digest: small at any spec size, and it still tells a change apart."""

from __future__ import annotations

import copy
from typing import Any

import kopf

from kubemigrate.controller.diffbase import DigestDiffBaseStorage

KEY = "kubemigrate.dev/last-handled-configuration"


def body(sql: str, **annotations: str) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "Migration",
            "metadata": {
                "name": "m1",
                "namespace": "shop",
                "uid": "u1",
                "resourceVersion": "7",
                "annotations": annotations,
            },
            "spec": {"version": "1", "sql": sql},
            "status": {"phase": "Succeeded"},
        }
    )


def storage() -> DigestDiffBaseStorage:
    return DigestDiffBaseStorage(prefix="kubemigrate.dev", key="last-handled-configuration")


def stored(store: DigestDiffBaseStorage, of: kopf.Body) -> dict[str, Any]:
    patch = kopf.Patch()
    store.store(body=of, patch=patch, essence=store.build(body=of))
    return dict(patch["metadata"]["annotations"])


def test_a_megabyte_of_sql_is_a_short_annotation() -> None:
    annotations = stored(storage(), body("SELECT 1;" + "-" * 1024 * 1024))
    assert len(annotations[KEY]) < 100


def test_the_digest_follows_the_spec_and_ignores_status_and_bookkeeping() -> None:
    store = storage()
    first = store.build(body=body("SELECT 1;"))
    assert store.build(body=body("SELECT 1;")) == first
    assert store.build(body=body("SELECT 2;")) != first
    raw = copy.deepcopy(dict(body("SELECT 1;")))
    raw["status"] = {"phase": "Failed"}
    raw["metadata"]["resourceVersion"] = "8"
    assert store.build(body=kopf.Body(raw)) == first
    assert store.build(body=body("SELECT 1;", team="data")) != first


def test_what_is_stored_is_what_is_fetched_and_compared() -> None:
    store = storage()
    annotations = stored(store, body("SELECT 1;"))
    again = body("SELECT 1;", **annotations)
    assert store.fetch(body=again) == store.build(body=again)


def test_an_old_full_copy_differs_from_every_digest() -> None:
    store = storage()
    old = {KEY: '{"spec":{"sql":"SELECT 1;","version":"1"}}\n'}
    legacy = body("SELECT 1;", **old)
    assert store.fetch(body=legacy) != store.build(body=legacy)
