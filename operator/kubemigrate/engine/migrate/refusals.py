"""What is refused before anything runs: SQL a migration cannot hold, statements its mode cannot
run, and a resume that needs a person. Each refusal is one line naming the migration, the
statement and its line."""

from __future__ import annotations

import re
from collections.abc import Sequence

from kubemigrate.engine.errors import InvalidSources, NeedsRepair, TransactionForbidden
from kubemigrate.engine.migrate import planning
from kubemigrate.engine.migrate.progress import resume_of, undecided
from kubemigrate.engine.migrate.step import Step

_COPY_STDIO = re.compile(r"\b(stdin|stdout)\b", re.IGNORECASE)


def refuse_forbidden(steps: Sequence[Step]) -> None:
    """InvalidSources for malformed batch markers (see ``batchspec``) and for SQL with a NUL
    character (the protocol ends a query at it);
    TransactionForbidden for DISCARD ALL and COPY FROM STDIN / TO STDOUT in any migration,
    and for the first statement a transactional step cannot run."""
    for step in steps:
        if step.batch_error is not None:
            where = f" ({step.source.path})" if step.source.path else ""
            raise InvalidSources(
                f"migration {step.version}{where}: its {step.kind} SQL has a malformed batched"
                f" step: {step.batch_error}; nothing was run"
            )
        if "\x00" in step.sql:
            raise InvalidSources(
                f"migration {step.version}: its {step.kind} SQL holds a NUL"
                " character, which PostgreSQL cannot take"
            )
        for s in step.statements or ():
            reason = _refused_anywhere(s.command, s.text)
            if reason is None and step.source.transactional:
                reason = _refused_in_a_transaction(
                    s.command, s.transaction_forbidden, s.transaction_control, s.reason
                )
            if reason is not None:
                raise TransactionForbidden(step.version, s.index, s.line, s.command, reason)


def _refused_anywhere(command: str, text: str) -> str | None:
    if command == "DISCARD ALL":
        return (
            "DISCARD ALL would release the migration lock and the engine's prepared"
            " statements; use DISCARD PLANS, DISCARD TEMP or DISCARD SEQUENCES"
        )
    if command == "COPY" and _COPY_STDIO.search(text):
        # The engine does not stream data: the connection would be left in COPY mode.
        return "COPY FROM STDIN / TO STDOUT is not supported; use INSERT"
    return None


def _refused_in_a_transaction(
    command: str, forbidden: bool, control: bool, reason: str | None
) -> str | None:
    if forbidden:
        return (
            f"{reason or command + ' cannot run in a transaction'}; mark the"
            " migration no-transaction (-- kubemigrate: no-transaction)"
        )
    if control:
        return (
            "transaction control in a transactional migration; remove it (each"
            " migration already runs in its own transaction)"
        )
    return None


def refuse_undecided(steps: Sequence[Step], records: planning.Records) -> None:
    """NeedsRepair for a no-transaction step whose last run stopped in a statement that the
    catalog cannot settle (see ``progress``)."""
    for step in steps:
        if not step.stepwise:
            continue
        problem = undecided(step, resume_of(step, records.get(step.key)))
        if problem is not None:
            raise NeedsRepair(step.version, f"migration {step.version}: {problem}; nothing was run")
