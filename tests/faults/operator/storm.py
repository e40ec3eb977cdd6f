"""A kill storm: one Migration at a time goes through preflight, its pre-migration backup, the
apply and a rollback by restore, and the operator is killed with SIGKILL at a random moment
inside each of those steps (and, once per Migration, right after the COMMIT, before the status
write), then started again. What must hold afterwards: every Migration applied exactly once,
none stuck, no Job left running or without its owner."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import yaml

from harness.kube import Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.backups import claim
from integration.operator.manifests import query, set_rollback, status, wait_phase

APPLY_SECONDS = 2.0
BALLAST = (
    "CREATE TABLE ballast AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 200000) g"
)
SETTLE = 120.0
"""Seconds a step may take to finish after a kill (stuck otherwise)."""
REACH = 60.0
"""Seconds to wait for a step to start (the moment to kill in)."""

COMMITTED = """
SELECT 1 FROM kubemigrate.history WHERE version = %s AND kind = 'apply' AND status = 'success'
"""
"""A row when version's apply is committed (one query: polled in a tight loop)."""

PREFLIGHT, BACKUP, APPLY, STATUS_WRITE, RESTORE = (
    "preflight",
    "backup",
    "apply",
    "status write",
    "restore",
)


@dataclass
class Kill:
    point: str
    hit: bool
    """The kill landed where it aimed (for a status write: before status said Succeeded)."""
    recovered_seconds: float = 0.0
    """From the restart to the step's end (the phase the Migration was heading for)."""


@dataclass
class Storm:
    kubectl: Kubectl
    namespace: str
    database_url: str
    start_operator: Callable[..., OperatorProcess]
    rng: random.Random
    op: OperatorProcess | None = None
    kills: list[Kill] = field(default_factory=list)

    def start(self) -> None:
        self.kubectl.apply(claim(), "-n", self.namespace)
        execute(self.database_url, "CREATE TABLE applied_log (version text NOT NULL)")
        # Ballast, so that a backup and a restore take long enough to be killed inside.
        execute(self.database_url, BALLAST)
        self.op = self.start_operator()

    # -- the moments to kill in ------------------------------------------------------------

    def _phase(self, name: str) -> str | None:
        return status(self.kubectl, self.namespace, name).get("phase")

    def _jobs(self, prefix: str) -> list[dict[str, Any]]:
        items = self.kubectl.json("get", "jobs", "-n", self.namespace)["items"]
        return [j for j in items if j["metadata"]["name"].startswith(prefix)]

    def _running_job(self, prefix: str) -> bool:
        return any(not (j.get("status") or {}).get("conditions") for j in self._jobs(prefix))

    def _sleeping(self) -> bool:
        return bool(
            query(
                self.database_url,
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query LIKE '%pg_sleep%' "
                "AND application_name LIKE 'kubemigrate-operator%'",
            )
        )

    def _kill(self, point: str, *, hit: bool = True) -> float:
        assert self.op is not None
        self.op.kill()
        self.kills.append(Kill(point, hit))
        self.op = self.start_operator()
        return time.monotonic()

    def _kill_within(
        self, point: str, reached: Callable[[], object], jitter: float, name: str, phase: str
    ) -> float:
        """Kill at a random moment (up to jitter seconds) after reached() holds; a hit if the
        Migration name is still in phase just before the kill."""
        wait_for(reached, timeout=REACH, interval=0.1, what=f"the {point} to start")
        time.sleep(self.rng.uniform(0, jitter))
        return self._kill(point, hit=self._phase(name) == phase)

    def _recovered(self, started: float) -> None:
        self.kills[-1].recovered_seconds = time.monotonic() - started

    # -- one Migration's way, with a kill in each step ---------------------------------------

    def manifest(self, name: str, version: str) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "kubemigrate.dev/v1alpha1",
                "kind": "Migration",
                "metadata": {"name": name},
                "spec": {
                    "database": {"secretRef": {"name": "db"}},
                    "version": version,
                    "sql": f"SELECT pg_sleep({APPLY_SECONDS});\n"
                    f"INSERT INTO applied_log VALUES ('{version}');",
                    "backup": {"storage": {"persistentVolumeClaim": {"claimName": "backups"}}},
                    "rollbackStrategy": "restore",
                },
            }
        )

    def cycle(self, index: int, points: tuple[str, ...]) -> None:
        """Migration m<index>, killed once in each of points (in their natural order)."""
        name, version = f"m{index}", str(index + 1)
        self.kubectl.apply(self.manifest(name, version), "-n", self.namespace)
        if PREFLIGHT in points:
            started = self._kill_within(
                PREFLIGHT, lambda: self._running_job(f"{name}-preflight"), 1.0, name, "Preflight"
            )
            wait_for(
                lambda: self._phase(name) in ("BackingUp", "Applying", "Succeeded"),
                timeout=SETTLE,
                what=f"{name} past preflight after the kill",
            )
            self._recovered(started)
        if BACKUP in points:
            started = self._kill_within(
                BACKUP, lambda: self._running_job(f"{name}-pre-g1"), 1.0, name, "BackingUp"
            )
            wait_for(
                lambda: self._phase(name) in ("Applying", "Succeeded"),
                timeout=SETTLE,
                what=f"{name} past its backup after the kill",
            )
            self._recovered(started)
        started = None
        if APPLY in points:
            started = self._kill_within(
                APPLY, self._sleeping, APPLY_SECONDS * 0.8, name, "Applying"
            )
        if STATUS_WRITE in points:  # the (re-)run's COMMIT, then a kill before the status write
            self._kill_after_commit(name, version, started)
        else:
            wait_phase(self.kubectl, self.namespace, name, "Succeeded", timeout=SETTLE)
            if started is not None:
                self._recovered(started)
        self.check_applied_once(version, expected=1)
        if RESTORE in points:
            set_rollback(self.kubectl, self.namespace, name, True)
            started = self._kill_within(
                RESTORE, lambda: self._running_job(f"{name}-restore-g2"), 1.0, name, "RollingBack"
            )
            wait_phase(self.kubectl, self.namespace, name, "RolledBack", timeout=SETTLE)
            self._recovered(started)
            self.check_applied_once(version, expected=0)

    def _kill_after_commit(self, name: str, version: str, apply_killed: float | None) -> None:
        """Kill the moment the history row of version is committed, before the operator can
        write Succeeded (a hit if status still says otherwise just after the kill). The
        database is polled every millisecond or so from the moment the apply may start."""
        committed = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + SETTLE
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    try:
                        row = conn.execute(COMMITTED, [version]).fetchone()
                    except psycopg.errors.UndefinedTable:  # no history yet
                        row = None
                    if row:
                        committed.set()
                        return
                    time.sleep(0.001)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        watcher.join(SETTLE)
        assert committed.is_set(), f"{name} never committed"
        assert self.op is not None
        self.op.kill()
        if apply_killed is not None:  # the apply's kill recovered when the re-run committed
            self._recovered(apply_killed)
        hit = self._phase(name) != "Succeeded"
        self.kills.append(Kill(STATUS_WRITE, hit))
        self.op = self.start_operator()
        started = time.monotonic()
        wait_phase(self.kubectl, self.namespace, name, "Succeeded", timeout=SETTLE)
        self._recovered(started)

    # -- what must hold ------------------------------------------------------------------------

    def check_applied_once(self, version: str, *, expected: int) -> None:
        logged = query(
            self.database_url, "SELECT count(*) FROM applied_log WHERE version = %s", [version]
        )[0][0]
        successes = query(
            self.database_url,
            "SELECT count(*) FROM kubemigrate.history WHERE version = %s AND kind = 'apply' "
            "AND status = 'success'",
            [version],
        )[0][0]
        assert (logged, successes) == (expected, expected), (
            f"version {version}: {logged} applied_log rows, {successes} history successes; "
            f"expected {expected}"
        )

    def check_no_orphaned_jobs(self) -> None:
        """Every Job finished (within a bound), and every owned Job's owner exists."""

        def active() -> list[str]:
            items = self.kubectl.json("get", "jobs", "-n", self.namespace)["items"]
            return [j["metadata"]["name"] for j in items if (j.get("status") or {}).get("active")]

        wait_for(lambda: not active(), timeout=SETTLE, what="no Job still running")
        owners = {
            (o["kind"], o["metadata"]["name"])
            for kind in ("migrations", "databasebackups", "databaserestores")
            for o in self.kubectl.json("get", kind, "-n", self.namespace)["items"]
        }
        for job in self.kubectl.json("get", "jobs", "-n", self.namespace)["items"]:
            for ref in job["metadata"].get("ownerReferences") or []:
                assert (ref["kind"], ref["name"]) in owners, (
                    f"Job {job['metadata']['name']} is owned by a missing {ref['kind']}"
                )

    def check_nothing_stuck(self) -> None:
        """Every Migration, backup and restore is in a settled phase."""
        settled = {"Succeeded", "RolledBack", "Failed", "DryRunSucceeded"}
        for kind in ("migrations", "databasebackups", "databaserestores"):
            for obj in self.kubectl.json("get", kind, "-n", self.namespace)["items"]:
                phase = (obj.get("status") or {}).get("phase")
                assert phase in settled, f"{kind} {obj['metadata']['name']} stuck in {phase}"


def execute(url: str, sql: str) -> None:
    """Run a statement that returns no rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[call-overload]
