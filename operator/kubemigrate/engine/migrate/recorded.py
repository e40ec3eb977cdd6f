"""What the history recorded of the run that applied a version, read back for a caller that
lost its report (an operator killed between COMMIT and writing status).

The row is the one ``version_state`` names as the version's last transition, when that is a
successful apply: a rolled-back, failed or baselined version was applied by no run that counts.
"""

from __future__ import annotations

from psycopg import sql

from kubemigrate.engine.migrate.history import History
from kubemigrate.engine.migrate.results import AppliedRun, MigrationResult, Origin
from kubemigrate.engine.migrate.versions import version_key
from kubemigrate.engine.pg.clock import from_microseconds, microseconds_sql

_LAST_APPLY = """
SELECT h.run_id::text, h.version, h.description, h.checksum,
       {started}, {finished}, h.duration_ms, h.rows_affected,
       h.tables_created, h.tables_altered, h.tables_dropped, h.attempts,
       h.resource_name, h.resource_uid, h.resource_generation
FROM {schema}.version_state s JOIN {schema}.history h ON h.id = s.last_id
WHERE s.version_key = %s::numeric[] AND s.state = 'applied' AND s.last_kind = 'apply'
"""


def last_apply(history: History, version: str) -> AppliedRun | None:
    """The run that applied version, if it is applied by one; None without a history."""
    if history.layout() is None:
        return None
    query = sql.SQL(_LAST_APPLY).format(
        schema=sql.Identifier(history.schema),
        started=sql.SQL(microseconds_sql("h.started_at")),
        finished=sql.SQL(microseconds_sql("h.finished_at")),
    )
    rows = history.session.execute(query, [list(version_key(version))])
    if not rows:
        return None
    (run_id, found, description, checksum, started, finished, ms, rows_affected) = rows[0][:8]
    created, altered, dropped, attempts, name, uid, generation = rows[0][8:]
    started_at = from_microseconds(started)
    assert started_at is not None
    result = MigrationResult(
        version=found,
        description=description,
        kind="apply",
        status="success",
        checksum=checksum,
        started_at=started_at,
        finished_at=from_microseconds(finished) or started_at,
        duration_seconds=(ms or 0) / 1000,
        rows_affected=rows_affected or 0,
        tables_created=tuple(created or ()),
        tables_altered=tuple(altered or ()),
        tables_dropped=tuple(dropped or ()),
        attempts=attempts or 1,
    )
    origin = Origin(name, uid, generation) if name or uid else None
    return AppliedRun(run_id, result, origin)
