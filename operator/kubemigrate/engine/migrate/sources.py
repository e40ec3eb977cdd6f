"""Migration sources: the SQL files of a directory, read and checked before anything runs.

File names understood (``<version>`` as in ``versions``; ``<name>`` becomes the description, with
``_`` read as a space):

- ``<version>_<name>.up.sql``, ``<version>_<name>.down.sql`` (golang-migrate style), and
  ``<version>_<name>.sql`` as an up file without a down file. ``<version>`` may use ``.`` between
  segments but not ``_``, which ends the version here; the ``_<name>`` part is optional.
- ``V<version>__<name>.sql`` and ``U<version>__<name>.sql`` (Flyway versioned and undo files);
  Flyway's ``V1_1__x.sql`` is version ``1.1``.
- ``<version>_<name>.verify.sql``: SQL run after the migration to check it (it should fail, e.g.
  raise, when the migration did not do its job).

A file's leading comment lines may hold directives: ``-- kubemigrate: no-transaction`` (run the
statements one by one outside a transaction, for ``CREATE INDEX CONCURRENTLY`` and friends),
``-- kubemigrate: lock-timeout=5s``, ``-- kubemigrate: statement-timeout=30m``; several may share
one line, separated by commas or spaces. The up file's directives govern both directions; a down
file may repeat them but not contradict them.

Files not ending in ``.sql``, hidden files and subdirectories are ignored. An empty file is a
migration that changes nothing. Every problem (duplicate versions, unreadable names, a down file
without its up file, ...) is collected and raised together as one ``SourceError``.

Every command reads the whole directory (``validate`` checks every applied checksum), so reading
stays lean: one ``scandir``, names handled as strings, files read as bytes and decoded in one go.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from kubemigrate.engine.migrate.batchspec import MarkerError, markers
from kubemigrate.engine.migrate.checksum import sql_checksum
from kubemigrate.engine.migrate.durations import parse_duration
from kubemigrate.engine.migrate.versions import validate_version, version_key

_SIMPLE = re.compile(
    r"(?P<version>[0-9]+(?:\.[0-9]+)*)(?:_(?P<name>.*?))?(?:\.(?P<kind>up|down|verify))?\.sql"
)
_FLYWAY = re.compile(r"(?P<prefix>[VU])(?P<version>[0-9]+(?:[._][0-9]+)*)__(?P<name>.*)\.sql")
_DIRECTIVE = re.compile(r"--\s*kubemigrate:(?P<body>.*)", re.IGNORECASE)
_BATCH_WORD = re.compile(r"\s*batch", re.IGNORECASE)


class SourceError(ValueError):
    """One or more problems with the migration sources; ``problems`` lists each one."""

    def __init__(self, problems: Iterable[str], where: str | None = None) -> None:
        self.problems = list(problems)
        self.where = where
        head = f"invalid migrations in {where}" if where else "invalid migrations"
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{head} ({count} {noun}): " + "; ".join(self.problems))


@dataclass(frozen=True)
class MigrationSource:
    """One migration as written: its forward SQL and, optionally, how to revert and verify it."""

    version: str
    description: str
    up_sql: str
    down_sql: str | None = None
    transactional: bool = True
    verify_sql: str | None = None
    lock_timeout: float | None = None
    statement_timeout: float | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        validate_version(self.version)

    # Computed once per source: planning compares and sorts by them over and over.
    @cached_property
    def checksum(self) -> str:
        """The drift checksum of the forward SQL (see ``checksum``)."""
        return sql_checksum(self.up_sql)

    @cached_property
    def key(self) -> tuple[int, ...]:
        """The ordering key of the version (see ``versions.version_key``)."""
        return version_key(self.version)

    @property
    def rollback_available(self) -> bool:
        """Whether the source carries SQL to revert it."""
        return self.down_sql is not None


@dataclass(frozen=True)
class Directives:
    """What a file's ``-- kubemigrate:`` header lines say."""

    transactional: bool = True
    lock_timeout: float | None = None
    statement_timeout: float | None = None


def parse_directives(sql: str) -> Directives:
    """The directives in the leading ``-- kubemigrate:`` lines of sql; ValueError if bad."""
    transactional = True
    found: dict[str, float | None] = {"lock-timeout": None, "statement-timeout": None}
    for line in sql.splitlines():
        m = _DIRECTIVE.fullmatch(line.strip())
        if not m or _BATCH_WORD.match(m["body"]):
            break  # a batch marker belongs to the statement after it (see ``batchspec``)
        for word in m["body"].replace(",", " ").split():
            name, eq, value = word.partition("=")
            name = name.lower()
            if name == "no-transaction" and not eq:
                transactional = False
            elif name in found and eq:
                found[name] = parse_duration(value)
            else:
                raise ValueError(
                    f"unknown directive {word!r} (known: no-transaction, lock-timeout=<duration>,"
                    " statement-timeout=<duration>)"
                )
    return Directives(transactional, found["lock-timeout"], found["statement-timeout"])


@dataclass
class _Entry:
    """The files of one version, by name."""

    version: str
    name: str
    up: str | None = None
    down: str | None = None
    verify: str | None = None
    files: list[str] = field(default_factory=list)


def _classify(filename: str) -> tuple[str, str, str] | None:
    """(version, name, kind) for a migration file name, kind in up/down/verify; None otherwise."""
    m = _FLYWAY.fullmatch(filename)
    if m:
        kind = "up" if m["prefix"] == "V" else "down"
        return m["version"].replace("_", "."), m["name"], kind
    m = _SIMPLE.fullmatch(filename)
    if m:
        return m["version"], m["name"] or "", m["kind"] or "up"
    return None


def _unparsable(filename: str) -> str:
    if filename.startswith("R__"):
        return f"{filename}: repeatable (R__) migrations are not supported"
    return (
        f"{filename}: file name matches no migration pattern (expected e.g. "
        "'001_create_users.up.sql', '001_create_users.down.sql' or 'V1__create_users.sql')"
    )


def _read(prefix: str, filename: str, problems: list[str]) -> str | None:
    """The text of the file ``prefix + filename`` as ``Path.read_text(encoding="utf-8-sig")``
    gives it (a BOM dropped, newlines made ``\\n``), or None with the problem recorded.

    It runs for every file of every command: read unbuffered from a plain string path, decoded
    by the built-in UTF-8 decoder (the utf-8-sig codec is Python code)."""
    try:
        with open(prefix + filename, "rb", buffering=0) as file:  # noqa: PTH123 - see above
            data = file.read()
        text = data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{filename}: not valid UTF-8 ({exc.reason} at byte {exc.start})")
        return None
    except OSError as exc:
        problems.append(f"{filename}: cannot read ({exc.strerror})")
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _prefix(directory: Path) -> str:
    """What ``str(directory / name)`` puts before a file name: ``"dir/"``, nothing for ``.``."""
    return str(directory / "x")[:-1]


def _collect(directory: Path, problems: list[str]) -> dict[tuple[int, ...], _Entry]:
    entries: dict[tuple[int, ...], _Entry] = {}
    with os.scandir(directory) as scan:
        files = sorted(
            e.name
            for e in scan
            if e.name.endswith(".sql") and not e.name.startswith(".") and e.is_file()
        )
    for filename in files:
        parsed = _classify(filename)
        if parsed is None:
            problems.append(_unparsable(filename))
            continue
        version, name, kind = parsed
        entry = entries.setdefault(version_key(version), _Entry(version, name))
        entry.files.append(filename)
        previous: str | None = getattr(entry, kind)
        if previous is not None:
            problems.append(
                f"{filename}: duplicate version {version} ({previous} is already its {kind} file)"
            )
            continue
        setattr(entry, kind, filename)
        if kind == "up":
            entry.version, entry.name = version, name
    return entries


def _build(entry: _Entry, prefix: str, problems: list[str]) -> MigrationSource | None:
    if entry.up is None:
        problems.append(
            f"{', '.join(entry.files)}: no up file for version {entry.version} "
            f"(expected e.g. {entry.version}_{entry.name or 'name'}.up.sql)"
        )
        return None
    up_sql = _read(prefix, entry.up, problems)
    down_sql = _read(prefix, entry.down, problems) if entry.down else None
    verify_sql = _read(prefix, entry.verify, problems) if entry.verify else None
    if up_sql is None or (entry.down and down_sql is None) or (entry.verify and verify_sql is None):
        return None
    try:
        directives = parse_directives(up_sql)
    except ValueError as exc:
        problems.append(f"{entry.up}: {exc}")
        return None
    for name, text in ((entry.up, up_sql), (entry.down, down_sql)):
        try:
            markers(text or "")
        except MarkerError as exc:
            problems.append(f"{name}: {exc}")
            return None
    if entry.down is not None and down_sql is not None:
        try:
            down_directives = parse_directives(down_sql)
        except ValueError as exc:
            problems.append(f"{entry.down}: {exc}")
            return None
        if down_directives != directives and down_directives != Directives():
            problems.append(
                f"{entry.down}: its kubemigrate directives differ from {entry.up}'s; "
                "the up file's directives govern both directions"
            )
            return None
    return MigrationSource(
        version=entry.version,
        description=entry.name.replace("_", " ").strip(),
        up_sql=up_sql,
        down_sql=down_sql,
        transactional=directives.transactional,
        verify_sql=verify_sql,
        lock_timeout=directives.lock_timeout,
        statement_timeout=directives.statement_timeout,
        path=prefix + entry.up,
    )


def load_directory(path: str | os.PathLike[str]) -> list[MigrationSource]:
    """The migrations in a directory, sorted by version; SourceError listing every problem."""
    directory = Path(path)
    if not directory.exists():
        raise SourceError([f"{directory}: directory does not exist"])
    if not directory.is_dir():
        raise SourceError([f"{directory}: not a directory"])
    problems: list[str] = []
    try:
        entries = _collect(directory, problems)
    except OSError as exc:
        raise SourceError([f"{directory}: cannot list ({exc.strerror})"]) from exc
    prefix = _prefix(directory)
    sources = [
        s for key in sorted(entries) if (s := _build(entries[key], prefix, problems)) is not None
    ]
    if problems:
        raise SourceError(problems, where=str(directory))
    return sources


def check_unique(sources: Iterable[MigrationSource]) -> list[MigrationSource]:
    """The sources sorted by version; SourceError if two share a version (``001`` and ``1``)."""
    seen: dict[tuple[int, ...], MigrationSource] = {}
    problems: list[str] = []
    for source in sources:
        other = seen.setdefault(source.key, source)
        if other is not source:
            problems.append(
                f"duplicate version {source.version} "
                f"({other.path or other.version} and {source.path or source.version})"
            )
    if problems:
        raise SourceError(problems)
    return sorted(seen.values(), key=lambda s: s.key)
