"""The Job builder: deterministic names, Secret-sourced URL, owner reference, no API token."""

from __future__ import annotations

from kubemigrate.controller.build.jobs import JobRequest, Owner, build_job, job_name
from kubemigrate.settings import Settings

OWNER = Owner("Migration", "m1", "ns", "uid-1", generation=4)


def test_job_takes_url_from_secret_and_belongs_to_owner() -> None:
    job = build_job(
        OWNER, JobRequest("preflight", ["preflight", "--x"], "db", "url"), Settings(image="img:1")
    )
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["name"] == "m1-preflight-g4"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert container["image"] == "img:1"
    assert container["command"] == ["kubemigrate"]
    assert container["args"][:2] == ["preflight", "--x"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "url"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_long_names_are_shortened_deterministically() -> None:
    long = Owner("Migration", "x" * 70, "ns", "u", 1)
    name = job_name(long, "preflight")
    assert len(name) <= 63
    assert name == job_name(long, "preflight")
    assert name != job_name(Owner("Migration", "x" * 70, "ns", "u", 2), "preflight")
