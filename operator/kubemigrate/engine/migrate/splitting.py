"""Splitting the migrations that will run before the migration lock is taken.

Splitting a big file takes time (0.4 s for 40,000 statements); done under the lock, it would
hold the lock over an idle connection. So the steps the history (read without the lock) says
will run are split first; whatever another runner changed in between is split under the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kubemigrate.engine.migrate import planning
from kubemigrate.engine.migrate.results import Kind
from kubemigrate.engine.migrate.sources import MigrationSource
from kubemigrate.engine.migrate.step import RunContext, Step


class EarlySteps:
    """Steps split before the lock is taken, so that parsing a big file never holds the lock
    over an idle connection: the ones the history (read without the lock) says will run.
    Whatever another runner changed in between is parsed under the lock."""

    def __init__(
        self, kind: Kind, choose: Callable[[planning.Records], Iterable[MigrationSource]]
    ) -> None:
        self.kind = kind
        self.choose = choose
        self.steps: dict[tuple[int, ...], Step] = {}

    def early(self, ctx: RunContext) -> None:
        records = ctx.history.peek()
        if records is None:  # an older layout: read under the lock, after its upgrade
            return
        for source in self.choose(records):
            self.steps[source.key] = Step.of(source, self.kind, ctx.session.server_version)

    def step(self, ctx: RunContext, source: MigrationSource) -> Step:
        found = self.steps.get(source.key)
        if found is not None and found.source is source:
            return found
        return Step.of(source, self.kind, ctx.session.server_version)
