"""MigrationFlow against the in-memory API, with the engine faked at the flow's seam (the
migrator factory): preflight, apply, failures, rollback, the queue and the restore point."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubemigrate.controller.flows.context import Backoff, StepContext
from kubemigrate.controller.flows.migration import MigrationFlow
from kubemigrate.controller.flows.migration_status import IDLE, QUEUED, RELOOK
from kubemigrate.controller.flows.preflight import JOB_POLL
from kubemigrate.controller.kube.api import Forbidden, Invalid
from kubemigrate.controller.ordering.migrations import DatabaseKey, Peer, peer_of
from kubemigrate.engine import (
    AppliedRun,
    AuthenticationFailed,
    ConnectionFailed,
    InvalidUrl,
    MigrationResult,
    MigrationSource,
    RunReport,
    VersionState,
)
from kubemigrate.models.migration import MigrationSpec
from kubemigrate.settings import Settings

NS = "shop"
MIGRATIONS = "migrations"
T0 = datetime(2024, 12, 20, 10, 0, 0, 250000, tzinfo=UTC)
PASSED = json.dumps(
    {"ok": True, "checks": [{"name": "connectivity", "passed": True, "message": "PostgreSQL 15"}]}
)


def migration(name: str = "m1", version: str = "001", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "Migration",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "database": {"secretRef": {"name": "db"}},
            "version": version,
            "sql": "CREATE TABLE t (id int)",
            **spec,
        },
    }


class LiveIndex(Mapping[DatabaseKey, list[Peer]]):
    """kopf's index of Migrations by database, read from the fake API at each lookup."""

    def __init__(self, kube: Any) -> None:
        self.kube = kube

    def _peers(self) -> list[Peer]:
        return [
            peer_of(o) for (plural, _, _), o in self.kube.objects.items() if plural == MIGRATIONS
        ]

    def __getitem__(self, key: DatabaseKey) -> list[Peer]:
        found = [p for p in self._peers() if p.database == key]
        if not found:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[DatabaseKey]:
        return iter({p.database for p in self._peers()})

    def __len__(self) -> int:
        return len({p.database for p in self._peers()})


def result(source: MigrationSource, kind: str, **fields: Any) -> MigrationResult:
    values: dict[str, Any] = {
        "version": source.version,
        "description": source.description,
        "kind": kind,
        "status": "success",
        "checksum": source.checksum,
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=1.5),
        "duration_seconds": 1.5,
        "rows_affected": 3,
        "tables_created": ("public.t",),
    }
    return MigrationResult(**(values | fields))


class FakeMigrator:
    """The engine as the flow sees it: what is applied, and every call made."""

    def __init__(self) -> None:
        self.applied: set[str] = set()
        self.calls: list[tuple[Any, ...]] = []
        self.sources: list[MigrationSource] = []
        self.fail: dict[str, Any] | None = None
        self.error: Exception | None = None
        self.recorded: dict[str, AppliedRun] = {}
        """The history's record of the run that applied each version (see last_applied)."""

    def open(
        self, url: str, obj: Mapping[str, Any], spec: MigrationSpec, ctx: StepContext
    ) -> FakeMigrator:
        self.calls.append(("open", url, obj["metadata"]["name"]))
        return self

    def _report(self, kind: str, results: Sequence[MigrationResult]) -> RunReport:
        return RunReport(
            "run-1",
            kind,
            T0,
            T0 + timedelta(seconds=2),  # type: ignore[arg-type]
            tuple(results),
            max(self.applied, default=None),
        )

    def apply(
        self, sources: Iterable[MigrationSource], *, dry_run: bool, allow_out_of_order: bool
    ) -> RunReport:
        todo = [s for s in sources if s.version not in self.applied]
        self.sources += todo
        self.calls.append(("apply", [s.version for s in todo], dry_run))
        if self.error is not None:
            raise self.error
        if self.fail is not None:
            return self._report("apply", [result(todo[0], "apply", **self.fail)])
        if not dry_run:
            self.applied |= {s.version for s in todo}
        return self._report("apply", [result(s, "apply") for s in todo])

    def rollback(self, sources: Iterable[MigrationSource], *, versions: Sequence[str]) -> RunReport:
        self.calls.append(("rollback", list(versions)))
        self.applied -= set(versions)
        done = [s for s in sources if s.version in versions]
        return self._report(
            "rollback",
            [
                result(
                    s, "rollback", rows_affected=0, tables_created=(), tables_dropped=("public.t",)
                )
                for s in done
            ],
        )

    def status(self, sources: Iterable[MigrationSource]) -> list[VersionState]:
        self.calls.append(("status",))
        return [
            VersionState(
                s.version,
                s.description,
                "applied" if s.version in self.applied else "pending",
                s.checksum,
            )
            for s in sources
        ]

    def ensure_history(self) -> None:
        self.calls.append(("ensure_history",))

    def last_applied(self, version: str) -> AppliedRun | None:
        self.calls.append(("last_applied", version))
        return self.recorded.get(version) if version in self.applied else None

    def cancel(self) -> int:
        self.calls.append(("cancel",))
        return 0


@pytest.fixture
def engine() -> FakeMigrator:
    return FakeMigrator()


@pytest.fixture
def flow(kube: Any, engine: FakeMigrator) -> MigrationFlow:
    kube.secrets[(NS, "db")] = {"url": "postgresql://app:secret@db/shop"}
    return MigrationFlow(Backoff(1.0, 10.0), LiveIndex(kube), migrator=engine.open)


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def step(flow: MigrationFlow, kube: Any, ctx: StepContext, name: str = "m1") -> float:
    """One daemon step on the object as the watch delivers it now."""
    return asyncio.run(flow.step(kube.body(MIGRATIONS, NS, name), ctx))


# -- apply --------------------------------------------------------------------------------------


def test_pending_through_preflight_job_to_succeeded(
    kube: Any, ctx: StepContext, recorder: Any, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(MIGRATIONS, migration(rollbackSql="DROP TABLE t"))

    assert step(flow, kube, ctx) == JOB_POLL
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Preflight", "PreflightRunning")
    assert status["preflightJob"] == "m1-preflight-g1"
    assert conditions(status) == {"Ready": "False", "Reconciling": "True", "Stalled": "False"}
    plan = json.loads(kube.configmaps[(NS, "m1-preflight-g1")]["plan.json"])
    assert plan["version"] == "001"
    assert kube.job_args(NS, "m1-preflight-g1")[:3] == [
        "preflight",
        "--plan",
        "/var/run/kubemigrate/plan/plan.json",
    ]
    assert engine.calls == []  # nothing touches the database before preflight passed

    assert step(flow, kube, ctx) == JOB_POLL  # the Job still runs: look again soon
    kube.finish_job(NS, "m1-preflight-g1", ok=True, message=PASSED)
    assert step(flow, kube, ctx) == IDLE

    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Succeeded", "Applied")
    assert status["message"] == "applied version 001 in 1.50s, 3 row(s)"
    assert status["checksum"] == engine.sources[0].checksum
    assert status["rollbackAvailable"] is True
    assert status["observedGeneration"] == 1
    assert status["preflight"] == [
        {"name": "connectivity", "passed": True, "message": "PostgreSQL 15"}
    ]
    assert (status["startedAt"], status["completedAt"]) == (
        "2024-12-20T10:00:00Z",
        "2024-12-20T10:00:01Z",
    )
    assert (status["durationSeconds"], status["rowsAffected"]) == (1.5, 3)
    assert status["tablesCreated"] == ["public.t"]
    assert conditions(status) == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    assert engine.calls == [
        ("open", "postgresql://app:secret@db/shop", "m1"),
        ("apply", ["001"], False),
    ]
    assert recorder.reasons() == ["PreflightStarted", "Applying", "Applied"]
    # The patches are merge patches: every phase change clears waitingFor, success clears
    # lastError, and only what changed is sent.
    final = kube.patches[-1][2]
    assert final["waitingFor"] is None and final["lastError"] is None
    assert "preflight" not in final and "backupRef" not in final
    assert ctx.metrics.migrations.labels(NS, "applied")._value.get() == 1

    assert step(flow, kube, ctx) == IDLE  # settled: nothing more to do
    assert len(engine.calls) == 2


def test_a_failed_preflight_job_fails_the_migration_and_never_applies(
    kube: Any, ctx: StepContext, recorder: Any, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(MIGRATIONS, migration())
    step(flow, kube, ctx)
    kube.finish_job(
        NS,
        "m1-preflight-g1",
        ok=False,
        message=json.dumps(
            {
                "ok": False,
                "retryable": False,
                "checks": [
                    {"name": "connectivity", "passed": True, "message": "ok"},
                    {"name": "lock-blockers", "passed": False, "message": "pid 42 holds a lock"},
                ],
            }
        ),
    )

    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Failed", "PreflightFailed")
    assert status["message"] == "preflight failed: lock-blockers: pid 42 holds a lock"
    assert status["lastError"] == {"message": status["message"]}
    assert [c["passed"] for c in status["preflight"]] == [True, False]
    assert conditions(status) == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    assert "Warning" in {kind for kind, _, _ in recorder.events}
    assert step(flow, kube, ctx) == IDLE
    assert engine.calls == []


def test_a_killed_preflight_job_is_retried_as_a_new_attempt(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(MIGRATIONS, migration())
    step(flow, kube, ctx)
    kube.finish_job(NS, "m1-preflight-g1", ok=False, reason="DeadlineExceeded")

    delay = step(flow, kube, ctx)
    assert 0.8 <= delay <= 1.2  # the backoff's first delay, jittered
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Preflight", "PreflightFailed")
    assert "DeadlineExceeded" in status["message"]
    assert status["preflightJob"] == "m1-preflight-g1-1"
    assert kube.deleted_jobs == [(NS, "m1-preflight-g1")]

    due(kube)
    assert step(flow, kube, ctx) == JOB_POLL
    assert (NS, "m1-preflight-g1-1") in kube.jobs
    assert engine.calls == []


def due(kube: Any, name: str = "m1") -> None:
    """Time passes: the scheduled retry of name is due."""
    kube.objects[(MIGRATIONS, NS, name)]["status"]["nextAttemptAt"] = "2000-01-01T00:00:00Z"


def test_a_failing_preflight_backs_off_in_status_whatever_wakes_it(
    kube: Any, ctx: StepContext, recorder: Any, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    """The delay doubles per attempt and is kept in status: a step before it is due (a Job's
    deletion woke the daemon, or a new operator started) starts nothing."""
    kube.add(MIGRATIONS, migration())
    delays = []
    for attempt in range(12):
        job = "m1-preflight-g1" + (f"-{attempt}" if attempt else "")
        assert step(flow, kube, ctx) == JOB_POLL
        kube.finish_job(NS, job, ok=False, reason="DeadlineExceeded")
        delays.append(step(flow, kube, ctx))
        status = kube.status(MIGRATIONS, NS, "m1")
        assert status["failedAttempts"] == attempt + 1
        waited = datetime.fromisoformat(status["nextAttemptAt"].replace("Z", "+00:00"))
        assert waited > datetime.now(UTC)  # kept in whole seconds, rounded up
        fresh = MigrationFlow(Backoff(1.0, 10.0), LiveIndex(kube), migrator=engine.open)
        for woken in (flow, fresh):  # the same daemon woken early, or a restarted operator
            assert 0 < step(woken, kube, ctx) <= delays[-1] + 1
        assert len(kube.jobs) == 0
        due(kube)
    assert [round(d) for d in delays[:4]] == [1, 2, 4, 8] or all(
        0.8 * 2**i <= d <= 1.2 * 2**i for i, d in enumerate(delays[:4])
    )
    assert max(delays) <= 12  # the cap (10 s) and its jitter
    warnings = [m for kind, reason, m in recorder.events if kind == "Warning"]
    assert len(warnings) == 2, warnings  # the first failure and the tenth
    assert warnings[1].endswith("(attempt 10)")
    started = [m for _, reason, m in recorder.events if reason == "PreflightStarted"]
    assert len(started) == 2  # attempts 0 and 10


def test_a_spec_change_starts_the_backoff_again(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(MIGRATIONS, migration())
    step(flow, kube, ctx)
    kube.finish_job(NS, "m1-preflight-g1", ok=False, reason="DeadlineExceeded")
    step(flow, kube, ctx)
    assert kube.status(MIGRATIONS, NS, "m1")["failedAttempts"] == 1
    kube.update_spec(MIGRATIONS, NS, "m1", description="fixed")
    assert step(flow, kube, ctx) == JOB_POLL  # not held by the old generation's retry time
    status = kube.status(MIGRATIONS, NS, "m1")
    assert "failedAttempts" not in status and "nextAttemptAt" not in status
    assert (NS, "m1-preflight-g2") in kube.jobs


@pytest.mark.parametrize(
    ("refusal", "phase", "reason"),
    [
        (
            Invalid('ConfigMap "m1-preflight-g1" is invalid: []: Too long'),
            "Failed",
            "PreflightJobInvalid",
        ),
        (Forbidden("exceeded quota: configmaps"), "Preflight", "PreflightJobForbidden"),
    ],
    ids=["invalid", "forbidden"],
)
def test_a_refused_preflight_job_is_named_in_status_never_left_running(
    kube: Any,
    ctx: StepContext,
    flow: MigrationFlow,
    monkeypatch: pytest.MonkeyPatch,
    refusal: Exception,
    phase: str,
    reason: str,
) -> None:
    async def refuse(manifest: dict[str, Any]) -> None:
        raise refusal

    monkeypatch.setattr(kube, "ensure_configmap", refuse)
    kube.add(MIGRATIONS, migration())
    step(flow, kube, ctx)
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == (phase, reason)
    assert str(refusal) in status["message"]
    assert "is running" not in status["message"]
    assert kube.jobs == {}


def test_an_sql_error_fails_the_migration_with_where_it_failed(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}))
    engine.fail = {
        "status": "failed",
        "sqlstate": "42P07",
        "error": 'relation "t" exists',
        "statement_index": 1,
        "line": 1,
        "rows_affected": 0,
        "tables_created": (),
    }

    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Failed", "SQLError")
    assert status["message"] == 'SQLSTATE 42P07 at statement 1, line 1: relation "t" exists'
    assert status["lastError"] == {
        "sqlstate": "42P07",
        "message": 'relation "t" exists',
        "statement": "statement 1",
        "line": 1,
    }
    assert "checksum" not in status
    assert ctx.metrics.migrations.labels(NS, "failed")._value.get() == 1


def test_an_unreachable_database_is_retried_not_failed(
    kube: Any, ctx: StepContext, recorder: Any, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}))
    engine.error = ConnectionFailed("cannot connect to postgresql://app:***@db/shop")

    delay = step(flow, kube, ctx)
    assert 0.8 <= delay <= 1.2
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Applying", "DatabaseUnavailable")
    assert status["message"].endswith("(attempt 1; retrying in 1s)")
    assert conditions(status)["Stalled"] == "False"
    assert "DatabaseUnavailable" in recorder.reasons()


def test_an_already_applied_version_shows_the_run_that_applied_it(
    kube: Any, ctx: StepContext, recorder: Any, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    """Killed between the COMMIT and the status write, a restarted operator finds the version
    applied: status is rebuilt from the history row of the run that applied it, not from the
    run that found nothing to do (issue 10, defect 6)."""
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}))
    source = MigrationSource("001", "m1", "CREATE TABLE t (id int)")
    engine.applied.add("001")
    engine.recorded["001"] = AppliedRun(
        "run-that-applied",
        result(
            source,
            "apply",
            duration_seconds=3.02,
            finished_at=T0 + timedelta(seconds=3.02),
            rows_affected=7,
            tables_created=("public.t", "public.u"),
        ),
    )

    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Succeeded", "AlreadyApplied")
    assert status["runId"] == "run-that-applied"
    assert status["durationSeconds"] == 3.02
    assert status["rowsAffected"] == 7
    assert status["tablesCreated"] == ["public.t", "public.u"]
    assert (status["startedAt"], status["completedAt"]) == (
        "2024-12-20T10:00:00Z",
        "2024-12-20T10:00:03Z",
    )
    assert status["message"] == (
        "version 001 was already applied, by run run-that-applied in 3.02s, 7 row(s)"
    )
    assert engine.calls[-1] == ("last_applied", "001")


def test_an_already_applied_version_without_a_record_says_only_that(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    """Baselined, or recorded by an older engine: nothing to rebuild from."""
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}))
    engine.applied.add("001")
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Succeeded", "AlreadyApplied")
    assert status["message"] == "version 001 was already applied"
    assert status["runId"] == "run-1"


@pytest.mark.parametrize("preflight", [True, False])
def test_a_missing_secret_or_key_is_named_before_any_job_and_recovers(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow, preflight: bool
) -> None:
    """The Secret and its key are read before a preflight Job is created: a missing one is
    named in status at once and retried with backoff, not left to a pod that cannot start
    (issue 10, defect 4)."""
    kube.secrets.clear()
    kube.add(MIGRATIONS, migration(preflight={"enabled": preflight}))

    delay = step(flow, kube, ctx)
    assert 0.8 <= delay <= 1.2
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Pending", "SecretNotFound")
    assert status["message"].startswith(f"Secret {NS}/db not found (attempt 1; retrying in ")
    assert conditions(status) == {"Ready": "False", "Reconciling": "True", "Stalled": "False"}
    assert not kube.jobs and engine.calls == []

    kube.secrets[(NS, "db")] = {"password": "x"}
    due(kube)
    delay = step(flow, kube, ctx)
    assert 1.6 <= delay <= 2.4  # backing off
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Pending", "SecretKeyNotFound")
    assert status["message"].startswith(f"Secret {NS}/db has no key 'url'")
    assert not kube.jobs and engine.calls == []

    kube.secrets[(NS, "db")] = {"url": "postgresql://app:secret@db/shop"}
    due(kube)
    step(flow, kube, ctx)
    if preflight:
        assert (NS, "m1-preflight-g1") in kube.jobs
        assert kube.status(MIGRATIONS, NS, "m1")["phase"] == "Preflight"
    else:
        assert kube.status(MIGRATIONS, NS, "m1")["phase"] == "Succeeded"


# -- the queue ---------------------------------------------------------------------------------


def test_a_migration_waits_for_its_dependency_and_settling_wakes_the_next(
    kube: Any, ctx: StepContext, recorder: Any, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    first = kube.add(MIGRATIONS, migration("m1", "001", preflight={"enabled": False}))
    second = kube.add(
        MIGRATIONS, migration("m2", "002", preflight={"enabled": False}, dependsOn=["m1"])
    )
    other = MigrationFlow(Backoff(1.0, 10.0), flow.index, migrator=engine.open)

    # A new message is looked at again soon: the one it names may have moved while it was
    # written, before the index held the new waitingFor that wakes it (issue 10, defect 7).
    assert step(other, kube, ctx, "m2") == RELOOK
    status = kube.status(MIGRATIONS, NS, "m2")
    assert (status["phase"], status["reason"]) == ("Pending", "WaitingForDependency")
    assert status["waitingFor"] == "m1"
    assert kube.patches[-1][2]["waitingFor"] == "m1"
    writes = len(kube.patches)
    assert step(other, kube, ctx, "m2") == QUEUED  # unchanged: no write, the long sleep
    assert len(kube.patches) == writes

    assert step(flow, kube, ctx, "m1") == IDLE
    assert second["metadata"]["uid"] in recorder.woken  # the next in line looks again now
    assert first["metadata"]["uid"] not in recorder.woken

    assert step(other, kube, ctx, "m2") == IDLE
    status = kube.status(MIGRATIONS, NS, "m2")
    assert status["phase"] == "Succeeded"
    assert "waitingFor" not in status  # cleared by the phase change
    assert engine.applied == {"001", "002"}


# -- rollback ----------------------------------------------------------------------------------


def test_rollback_runs_the_rollback_sql_and_forgets_the_checksum(
    kube: Any, ctx: StepContext, recorder: Any, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}, rollbackSql="DROP TABLE t"))
    step(flow, kube, ctx)
    assert kube.status(MIGRATIONS, NS, "m1")["checksum"]

    kube.update_spec(MIGRATIONS, NS, "m1", rollback=True)
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("RolledBack", "RolledBack")
    assert status["observedGeneration"] == 2
    assert "checksum" not in status and status["rollbackAvailable"] is False
    assert status["tablesDropped"] == ["public.t"]
    assert engine.calls[-2:] == [("status",), ("rollback", ["001"])]
    assert engine.applied == set()
    assert recorder.reasons()[-2:] == ["RollingBack", "RolledBack"]
    assert ctx.metrics.migrations.labels(NS, "rolled_back")._value.get() == 1


def test_rollback_of_what_was_never_applied_only_says_so(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(
        MIGRATIONS,
        migration(preflight={"enabled": False}, rollback=True, rollbackSql="DROP TABLE t"),
    )
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("RolledBack", "NotApplied")
    assert ("rollback", ["001"]) not in engine.calls


def test_rollback_without_rollback_sql_fails(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}))
    step(flow, kube, ctx)
    kube.update_spec(MIGRATIONS, NS, "m1", rollback=True)
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Failed", "NoRollbackSql")
    assert engine.applied == {"001"}


# -- the restore point -------------------------------------------------------------------------


def test_backup_first_then_roll_back_by_restoring_it(
    kube: Any, ctx: StepContext, recorder: Any, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    storage = {"persistentVolumeClaim": {"claimName": "backups"}}
    kube.add(
        MIGRATIONS,
        migration(
            preflight={"enabled": False}, rollbackStrategy="restore", backup={"storage": storage}
        ),
    )

    assert step(flow, kube, ctx) == 2.0
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["backupRef"]) == ("BackingUp", {"name": "m1-pre-g1"})
    backup = kube.body("databasebackups", NS, "m1-pre-g1")
    assert backup["spec"]["storage"] == storage
    assert backup["metadata"]["ownerReferences"][0]["kind"] == "Migration"
    assert engine.calls[-1] == ("ensure_history",)  # so the backup holds the history too
    assert not engine.applied

    kube.objects[("databasebackups", NS, "m1-pre-g1")]["status"] = {
        "phase": "Succeeded",
        "verified": True,
        "startedAt": "2024-12-20T09:00:00Z",
    }
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert status["phase"] == "Succeeded" and status["rollbackAvailable"] is True
    assert status["backupRef"] == {"name": "m1-pre-g1"}

    kube.update_spec(MIGRATIONS, NS, "m1", rollback=True)
    assert step(flow, kube, ctx) == 2.0
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("RollingBack", "RestoringBackup")
    assert "taken at 2024-12-20T09:00:00Z" in status["message"]
    restore = kube.body("databaserestores", NS, "m1-restore-g2")
    assert restore["spec"]["backupRef"] == {"name": "m1-pre-g1"} and restore["spec"]["clean"]

    assert step(flow, kube, ctx) == 2.0  # the restore runs
    kube.objects[("databaserestores", NS, "m1-restore-g2")]["status"] = {
        "phase": "Succeeded",
        "startedAt": "2024-12-20T11:00:00Z",
        "completedAt": "2024-12-20T11:00:03.500000Z",
        "durationSeconds": 3.5,
    }
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("RolledBack", "RestoredBackup")
    assert "writes after 2024-12-20T09:00:00Z are lost" in status["message"]
    assert (status["completedAt"], status["durationSeconds"]) == (
        "2024-12-20T11:00:03.500000Z",
        3.5,
    )
    assert "checksum" not in status and status["rollbackAvailable"] is False
    assert ("rollback", ["001"]) not in engine.calls  # restored, not rolled back by SQL
    assert "RestoredBackup" in recorder.reasons()


def test_a_failed_pre_migration_backup_fails_the_migration(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    kube.add(
        MIGRATIONS,
        migration(
            preflight={"enabled": False},
            backup={"storage": {"persistentVolumeClaim": {"claimName": "backups"}}},
        ),
    )
    step(flow, kube, ctx)
    kube.objects[("databasebackups", NS, "m1-pre-g1")]["status"] = {
        "phase": "Failed",
        "message": "backup failed: disk full",
    }
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Failed", "BackupFailed")
    assert status["message"].endswith("was not applied: backup failed: disk full")
    assert not engine.applied


# -- a refused login: retried with backoff, then Stalled -----------------------------------------

REFUSED = (
    'cannot connect to postgresql://app@db/shop: password authentication failed for user "app"'
)
REFUSED_VERDICT = json.dumps(
    {
        "ok": False,
        "retryable": True,
        "reason": "AuthenticationFailed",
        "checks": [{"name": "connectivity", "passed": False, "message": REFUSED}],
    }
)


def bounded(ctx: StepContext, attempts: int = 3) -> StepContext:
    return dataclasses.replace(
        ctx, settings=Settings(image="kubemigrate:test", login_attempts=attempts)
    )


def test_a_refused_login_in_preflight_is_retried_then_stalls(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    """A wrong password is not an outage: retried a few times with backoff (the Secret may be
    mid-rotation), then Failed and Stalled, not a failed login every minute for ever (issue 10,
    defect 7: one rule for Migration and DatabaseBackup)."""
    ctx = bounded(ctx)
    kube.add(MIGRATIONS, migration())
    job = "m1-preflight-g1"
    assert step(flow, kube, ctx) == JOB_POLL
    for attempt in (1, 2):
        kube.finish_job(NS, job, ok=False, message=REFUSED_VERDICT)
        assert step(flow, kube, ctx) >= 0.8
        status = kube.status(MIGRATIONS, NS, "m1")
        assert (status["phase"], status["reason"]) == ("Preflight", "AuthenticationFailed")
        assert status["failedLogins"] == attempt
        assert f"(attempt {attempt} of 3; retrying in " in status["message"]
        assert "password authentication failed" in status["message"]
        assert conditions(status)["Stalled"] == "False"
        job = f"m1-preflight-g1-{attempt}"
        assert status["preflightJob"] == job
        due(kube)
        assert step(flow, kube, ctx) == JOB_POLL
        assert (NS, job) in kube.jobs

    kube.finish_job(NS, job, ok=False, message=REFUSED_VERDICT)
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Failed", "AuthenticationFailed")
    assert status["failedLogins"] == 3
    assert "3 attempts in a row" in status["message"]
    assert conditions(status) == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    assert status["preflightJob"] == job  # the last Job, kept for inspection
    assert status["preflight"][0]["name"] == "connectivity"
    assert step(flow, kube, ctx) == IDLE
    assert list(kube.jobs) == [(NS, job)] and engine.calls == []


def test_a_refused_login_at_apply_is_retried_then_stalls(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    ctx = bounded(ctx)
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}))
    engine.error = AuthenticationFailed(REFUSED)
    for attempt in (1, 2):
        assert step(flow, kube, ctx) >= 0.8
        status = kube.status(MIGRATIONS, NS, "m1")
        assert (status["phase"], status["reason"]) == ("Applying", "AuthenticationFailed")
        assert status["failedLogins"] == attempt
        due(kube)
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Failed", "AuthenticationFailed")
    assert conditions(status)["Stalled"] == "True"


def test_a_value_that_is_no_url_counts_as_a_refused_login(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    ctx = bounded(ctx, attempts=1)
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}))
    engine.error = InvalidUrl("cannot connect: the database URL is not a PostgreSQL URL")
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidDatabaseUrl")


def test_a_login_that_works_again_clears_the_count(
    kube: Any, ctx: StepContext, engine: FakeMigrator, flow: MigrationFlow
) -> None:
    ctx = bounded(ctx)
    kube.add(MIGRATIONS, migration(preflight={"enabled": False}))
    engine.error = AuthenticationFailed(REFUSED)
    step(flow, kube, ctx)
    engine.error = None
    due(kube)
    assert step(flow, kube, ctx) == IDLE
    status = kube.status(MIGRATIONS, NS, "m1")
    assert status["phase"] == "Succeeded"
    assert "failedLogins" not in status
