"""Prometheus metrics of the operator: what was applied, failed or rolled back, how long it
took, what waits, how fresh each database's last backup is, what backups cost and when each
schedule runs next. A database is labelled by its Secret's name and key, never a value."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from kubemigrate.controller.ordering.migrations import Peer
from kubemigrate.engine import BatchProgress, MigrationResult
from kubemigrate.models.migration import MigrationPhase

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    """One registry per operator process (tests create their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.migrations = Counter(
            "kubemigrate_migrations_total",
            "Migration runs by outcome.",
            ["namespace", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "kubemigrate_migration_duration_seconds",
            "How long applying or rolling back took.",
            ["namespace", "kind"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.pending = Gauge(
            "kubemigrate_migrations_pending",
            "Migrations not yet in their desired state.",
            ["namespace", "database"],
            registry=self.registry,
        )
        self.last_backup = Gauge(
            "kubemigrate_backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup.",
            ["namespace", "database"],
            registry=self.registry,
        )
        self.backup_size = Gauge(
            "kubemigrate_backup_size_bytes",
            "Size of the last successful backup.",
            ["namespace", "database"],
            registry=self.registry,
        )
        self.backups = Counter(
            "kubemigrate_backups_total",
            "Backups by outcome.",
            ["namespace", "outcome"],
            registry=self.registry,
        )
        self.backup_duration = Histogram(
            "kubemigrate_backup_duration_seconds",
            "How long successful backups took (the Job's pg_dump and verification).",
            ["namespace", "database"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.backup_failures = Counter(
            "kubemigrate_backup_failures_total",
            "Failed backups by database and reason.",
            ["namespace", "database", "reason"],
            registry=self.registry,
        )
        self.schedule_next = Gauge(
            "kubemigrate_backup_schedule_next_run_timestamp_seconds",
            "Unix time of a DatabaseBackupSchedule's next run (absent while suspended or invalid).",
            ["namespace", "schedule"],
            registry=self.registry,
        )
        self._last_success: dict[tuple[str, str], float] = {}

        self.batch_rows = Gauge(
            "kubemigrate_batch_rows_done",
            "Rows a running batched step has changed (its committed batches).",
            ["namespace", "migration"],
            registry=self.registry,
        )
        self.batch_estimate = Gauge(
            "kubemigrate_batch_rows_estimate",
            "Rows a running batched step will change in all, estimated (-1: unknown).",
            ["namespace", "migration"],
            registry=self.registry,
        )
        self.batch_rate = Gauge(
            "kubemigrate_batch_rows_per_second",
            "Rows per second of a running batched step.",
            ["namespace", "migration"],
            registry=self.registry,
        )
        self.batch_paused = Gauge(
            "kubemigrate_batch_paused",
            "1 while a batched step waits (spec.paused or replication lag), else 0.",
            ["namespace", "migration"],
            registry=self.registry,
        )

        self.fleet_targets = Gauge(
            "kubemigrate_fleet_targets",
            "A fleet rollout's targets by state (succeeded, failed, running, pending).",
            ["namespace", "migrationset", "state"],
            registry=self.registry,
        )
        self.fleet_waves = Counter(
            "kubemigrate_fleet_waves_total",
            "Fleet waves by outcome (started, completed, failed, halted).",
            ["namespace", "outcome"],
            registry=self.registry,
        )

    def fleet(self, namespace: str, migration_set: str, counts: Mapping[str, int]) -> None:
        """A fleet's counts by state, as its status shows them."""
        for state, value in counts.items():
            self.fleet_targets.labels(namespace, migration_set, state).set(value)

    def batch(self, namespace: str, migration: str, progress: BatchProgress) -> None:
        """A batched step's progress, after each batch (thread-safe: the engine's thread)."""
        labels = (namespace, migration)
        self.batch_rows.labels(*labels).set(progress.rows)
        estimate = progress.estimate
        self.batch_estimate.labels(*labels).set(-1 if estimate is None else estimate)
        self.batch_rate.labels(*labels).set(progress.rate or 0)
        self.batch_paused.labels(*labels).set(progress.state in ("paused", "lagging"))

    def observer(self, namespace: str) -> ObserveRun:
        """What MigrationFlow calls with (outcome, result, seconds) after a run."""
        return ObserveRun(self, namespace)

    def set_pending(self, namespace: str, database: str, peers: Iterable[Peer]) -> None:
        waiting = sum(1 for p in peers if not _desired(p))
        self.pending.labels(namespace, database).set(waiting)

    def saw_backup_success(self, namespace: str, database: str, at: float) -> None:
        """The last-success gauge only moves forward: a backup's or schedule's status read
        after a restart brings it back without setting it to an older time."""
        key = (namespace, database)
        if at > self._last_success.get(key, 0.0):
            self._last_success[key] = at
            self.last_backup.labels(namespace, database).set(at)

    def backup_failed(self, namespace: str, database: str, reason: str) -> None:
        self.backup_failures.labels(namespace, database, reason).inc()

    def schedule_observed(self, namespace: str, schedule: str, upcoming: datetime | None) -> None:
        if upcoming is None:
            self.forget_schedule(namespace, schedule)
        else:
            self.schedule_next.labels(namespace, schedule).set(upcoming.timestamp())

    def forget_schedule(self, namespace: str, schedule: str) -> None:
        with contextlib.suppress(KeyError):
            self.schedule_next.remove(namespace, schedule)

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)


class ObserveRun:
    """Counts a run and records its duration."""

    def __init__(self, metrics: Metrics, namespace: str) -> None:
        self.metrics, self.namespace = metrics, namespace

    def __call__(self, outcome: str, result: MigrationResult | None, seconds: float) -> None:
        self.metrics.migrations.labels(self.namespace, outcome).inc()
        kind = "rollback" if outcome.startswith("roll") else "apply"
        self.metrics.duration.labels(self.namespace, kind).observe(seconds)


def _desired(peer: Peer) -> bool:
    if not peer.settled:
        return False
    if peer.rollback:
        return peer.phase == MigrationPhase.ROLLED_BACK
    if peer.dry_run:
        return peer.phase in (MigrationPhase.DRY_RUN_SUCCEEDED, MigrationPhase.FAILED)
    return peer.phase in (MigrationPhase.SUCCEEDED, MigrationPhase.FAILED)
