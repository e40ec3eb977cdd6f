"""A DatabaseBackup's file goes with it: on deletion (pruning, TTL or kubectl delete), stop the
backup's Job, then run a cleanup Job that deletes the file, and wait for it.

A backup in object storage is deleted the same way, by a Job running ``delete-backup s3://...``
with the backup's own credentials (a Secret, or the Job's workload identity): the operator
itself never holds bucket credentials or needs bucket permissions, and one code path (the
CLI's, tested against a real S3 server) deletes local and remote backups. When the
credentials Secret is gone there is no way to delete the object: the resource goes, the
object stays, and a Warning Event says so, so the finalizer never wedges.

kopf retries the deletion handler while its finalizer holds the resource, so waiting is
raising `kopf.TemporaryError`; a cleanup Job that failed is a `kopf.PermanentError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubemigrate.controller.build.backup_jobs import (
    ObjectPlace,
    cleanup_owner,
    cleanup_request,
    parse_location,
    place_of,
)
from kubemigrate.controller.build.jobs import build_job, job_failure, job_finished
from kubemigrate.controller.build.status import status_of
from kubemigrate.controller.flows.backup import storage_missing
from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.kube.api import Forbidden
from kubemigrate.models.backup import DatabaseBackupSpec, DatabaseBackupStatus

FINISHED_POD_PHASES = frozenset({"Succeeded", "Failed"})
"""Pod phases (Kubernetes', not ours) of a pod that no longer writes the file."""


async def delete_backup_file(body: Mapping[str, Any], ctx: StepContext) -> None:
    """Remove the backup's file before the resource goes: stop its Job, then run a cleanup
    Job and wait for it."""
    meta = body["metadata"]
    current = status_of(DatabaseBackupStatus, body)
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    api = ctx.api
    if not current.job:
        return  # no Job ever ran: there is no file
    await api.delete_job(ns, current.job)
    pods = await api.job_pods(ns, current.job)
    if any((p.get("status") or {}).get("phase") not in FINISHED_POD_PHASES for p in pods):
        raise kopf.TemporaryError("waiting for the backup Job's pod to stop", delay=1)
    spec = DatabaseBackupSpec.model_validate(body.get("spec") or {})
    place = parse_location(current.location, spec.storage) or place_of(spec, ns, name, uid)
    missing = await storage_missing(ctx, ns, place)
    if missing is not None:
        if isinstance(place, ObjectPlace):
            ctx.emit("Warning", "BackupObjectKept", f"Cannot delete {place.location}: {missing[1]}")
        else:
            ctx.logger.info("%s: %s is gone with it", missing[1], place.location)
        return
    manifest = build_job(cleanup_owner(name, ns, uid), cleanup_request(place), ctx.settings)
    try:
        job = await api.ensure_job(manifest)
    except Forbidden as e:  # the namespace is being deleted, and its volumes with it
        ctx.logger.warning("cannot start the cleanup Job of %s: %s", place.location, e.reason)
        return
    finished = job_finished(job)
    if finished is None:
        raise kopf.TemporaryError(
            f"waiting for cleanup Job {manifest['metadata']['name']}", delay=1
        )
    if not finished:
        raise kopf.PermanentError(f"could not delete {place.location}: {job_failure(job)}")
    ctx.emit("Normal", "BackupFileDeleted", f"Deleted {place.location}")
