"""The history's own layout: its tables and view, created in one go or upgraded step by step.

``schema_info.layout_version`` says which layout a database has. A new database gets the
current one; an older one is brought up to date under the migration lock, one step of
``UPGRADES`` at a time, each in a transaction with its version bump; a kubemigrate that finds a
newer layout than it knows refuses to touch it (``HistoryTooNew``).

Layouts:

1. ``schema_info``, ``history`` (append-only, one row per run of a version) and the
   ``version_state`` view.
2. ``progress``: how far the unfinished run of a no-transaction migration got, statement by
   statement (one row per version, updated as it runs, deleted when it finishes), and
   ``version_state`` reading it: a failed no-transaction rollback is ``incomplete``, and each
   version carries its run's progress. A kubemigrate that knows only layout 1 refuses a
   layout-2 history.
3. ``progress`` gains the checkpoint of a batched statement (``batch_statement``, ``batches``,
   ``batch_rows``, ``last_key``, ``batch_size``), written in the transaction of each batch,
   and ``version_state`` reads it.
"""

from __future__ import annotations

LAYOUT_VERSION = 3
"""Version of the history's own layout; bump with an upgrade step in ``UPGRADES``."""

_TABLES = """
CREATE SCHEMA IF NOT EXISTS {schema};
COMMENT ON SCHEMA {schema} IS 'kubemigrate: migration history (append-only)';
CREATE TABLE IF NOT EXISTS {schema}.schema_info (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    layout_version integer NOT NULL,
    engine_version text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL,
    version text NOT NULL,
    version_key numeric[] NOT NULL,
    description text NOT NULL DEFAULT '',
    checksum text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('apply', 'rollback', 'dry_run', 'repair', 'baseline')),
    status text NOT NULL CHECK (status IN ('pending', 'success', 'failed')),
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    duration_ms double precision,
    rows_affected bigint,
    tables_created text[] NOT NULL DEFAULT '{{}}',
    tables_altered text[] NOT NULL DEFAULT '{{}}',
    tables_dropped text[] NOT NULL DEFAULT '{{}}',
    has_rollback boolean NOT NULL DEFAULT false,
    statement_index integer,
    error_line integer,
    sqlstate text,
    error text,
    attempts integer NOT NULL DEFAULT 1,
    executed_by text,
    engine_version text NOT NULL,
    resource_name text,
    resource_uid text,
    resource_generation bigint
);
COMMENT ON TABLE {schema}.history IS
    'kubemigrate: one row per run of a migration; rows are only ever inserted';
"""

_PROGRESS = """
CREATE TABLE IF NOT EXISTS {schema}.progress (
    version_key numeric[] PRIMARY KEY,
    version text NOT NULL,
    run_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('apply', 'rollback')),
    checksum text NOT NULL,
    statements integer NOT NULL,
    done integer NOT NULL,
    done_digest text NOT NULL,
    running integer,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE {schema}.progress IS
    'kubemigrate: how far the unfinished run of a no-transaction migration got';
"""
"""``done``: its first statements known to have run (``done_digest``: sha256 of their text);
``running``: the statement sent and not yet known done, which a killed run leaves behind. The
row belongs to the run ``run_id`` (its history rows share it) and counts only while that run's
row is the version's last word."""

_BATCHES = """
ALTER TABLE {schema}.progress
    ADD COLUMN IF NOT EXISTS batch_statement integer,
    ADD COLUMN IF NOT EXISTS batches bigint,
    ADD COLUMN IF NOT EXISTS batch_rows bigint,
    ADD COLUMN IF NOT EXISTS last_key text,
    ADD COLUMN IF NOT EXISTS batch_size integer;
"""
"""The checkpoint of the batched statement ``batch_statement`` (the one at ``done + 1`` while
it runs): ``batches`` committed, ``batch_rows`` they changed, the ``last_key`` the last one
returned (text; the server casts it back), and the (adaptive) ``batch_size`` it used."""

_VIEW_2 = """
CREATE OR REPLACE VIEW {schema}.version_state AS
WITH last_transition AS (
    SELECT DISTINCT ON (h.version_key) h.*
    FROM {schema}.history h
    WHERE h.kind IN ('apply', 'baseline')
       OR (h.kind = 'rollback' AND (h.status <> 'failed' OR EXISTS (
               SELECT 1 FROM {schema}.progress p
               WHERE p.version_key = h.version_key AND p.run_id = h.run_id)))
    ORDER BY h.version_key, h.id DESC
), last_accepted AS (
    SELECT DISTINCT ON (version_key) version_key, checksum, has_rollback
    FROM {schema}.history
    WHERE status = 'success' AND kind IN ('apply', 'baseline', 'repair')
    ORDER BY version_key, id DESC
)
SELECT t.version, t.version_key, t.description,
       CASE WHEN t.status = 'pending' OR (t.kind = 'rollback' AND t.status = 'failed')
                 THEN 'incomplete'
            WHEN t.kind = 'rollback' THEN 'rolled_back'
            WHEN t.status = 'success' THEN 'applied'
            ELSE 'failed' END AS state,
       CASE WHEN t.status = 'success' AND t.kind <> 'rollback'
            THEN coalesce(a.checksum, t.checksum) ELSE t.checksum END AS checksum,
       CASE WHEN t.status = 'success' AND t.kind <> 'rollback' THEN t.finished_at END
           AS applied_at,
       t.duration_ms,
       t.status = 'success' AND t.kind <> 'rollback' AND coalesce(a.has_rollback, false)
           AS rollback_available,
       t.sqlstate, t.error, t.kind AS last_kind, t.run_id AS last_run_id, t.id AS last_id,
       p.kind AS progress_kind, p.statements AS progress_statements, p.done AS progress_done,
       p.done_digest AS progress_digest, p.running AS progress_running
FROM last_transition t LEFT JOIN last_accepted a USING (version_key)
LEFT JOIN {schema}.progress p ON p.version_key = t.version_key AND p.run_id = t.run_id;
COMMENT ON VIEW {schema}.version_state IS 'kubemigrate: where each version stands now';
"""
"""A failed rollback changes nothing for a transactional migration (the version stays
applied); one of a no-transaction migration (its run has a progress row) may have run some of
its statements, so it leaves the version ``incomplete``. This is layout 2's view."""

_VIEW = _VIEW_2.replace(
    "p.running AS progress_running\n",
    "p.running AS progress_running, p.batch_statement AS progress_batch_statement,\n"
    "       p.batches AS progress_batches, p.batch_rows AS progress_batch_rows,\n"
    "       p.last_key AS progress_last_key, p.batch_size AS progress_batch_size\n",
)
"""Layout 3's view: layout 2's with the batch checkpoint (columns added at the end, as
``CREATE OR REPLACE VIEW`` requires)."""

CREATE = (
    _TABLES
    + _PROGRESS
    + _BATCHES
    + _VIEW
    + """
INSERT INTO {schema}.schema_info (layout_version, engine_version)
VALUES ({layout}, {engine}) ON CONFLICT (singleton) DO NOTHING;
"""
)
"""The current layout, for a database without a history (a ``psycopg.sql`` template)."""

UPGRADES: dict[int, str] = {1: _PROGRESS + _VIEW_2, 2: _BATCHES + _VIEW}
"""layout version n -> SQL taking the layout from n to n + 1 (``psycopg.sql`` templates)."""
