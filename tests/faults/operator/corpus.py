"""A corpus of malformed and hostile manifests: wrong types, bad patterns, sizes, missing
references, dependency cycles, changes of immutable fields, hostile Secret contents.

Each case either must be refused by the API server with a message that names the field, or is
accepted and must settle (within a bound) with a reason: Failed and Stalled, or, for what time
or the user may cure (a missing Secret, a dependency not yet there), Reconciling with a reason
that names it. `may_refuse` cases pass either way (a rule another change may add to the CRD).

Manifests name the Secret `SECRET`; an accepted case gets a database and a Secret of its own, so
that no case waits in another's queue. Secret values carry the run's canary token where a
secret would be (the password, or the whole value when it is not a URL).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KIB = 1024
SQL_MAX = 1024 * KIB

Doc = dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    docs: list[Doc]
    refused: str | None = None
    """The field the API server's refusal must name; None: the manifests must be accepted."""
    may_refuse: bool = False
    reasons: frozenset[str] = frozenset()
    """Accepted: the reasons it may settle with (empty: any reason)."""
    secret: Callable[[str, str], str] | None = None
    """(database URL, canary) -> the Secret's value; default: the URL, canary as password."""
    change: Doc | None = None
    """Apply docs, wait until the (single) Migration succeeded, then merge-patch its spec."""
    no_secret: bool = False
    """Create no Secret at all (the case is about a missing one)."""


def migration(name: str = "m", **spec: Any) -> Doc:
    body: Doc = {
        "database": {"secretRef": {"name": "SECRET"}},
        "version": "1",
        "sql": "SELECT 1;",
        "preflight": {"enabled": False},
    }
    body.update(spec)
    return {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "Migration",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not DROP},
    }


def backup(name: str = "b", **spec: Any) -> Doc:
    body: Doc = {
        "database": {"secretRef": {"name": "SECRET"}},
        "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
    }
    body.update(spec)
    return {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "DatabaseBackup",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not DROP},
    }


def restore(name: str = "r", **spec: Any) -> Doc:
    body: Doc = {"backupRef": {"name": "nightly"}}
    body.update(spec)
    return {
        "apiVersion": "kubemigrate.dev/v1alpha1",
        "kind": "DatabaseRestore",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not DROP},
    }


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()
"""A spec value that removes the field from the manifest."""


def _with(doc: Doc, path: str, value: Any) -> Doc:
    """doc with the dotted path set to value (DROP removes it)."""
    out = copy.deepcopy(doc)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is DROP:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def _refused(case_id: str, field_name: str, doc: Doc) -> Case:
    return Case(case_id, [doc], refused=field_name)


TYPE_ERRORS: list[tuple[str, Any, str]] = [
    ("spec.version", 1, "version-int"),
    ("spec.version", True, "version-bool"),
    ("spec.sql", 42, "sql-int"),
    ("spec.sql", ["SELECT 1"], "sql-list"),
    ("spec.rollback", "yes", "rollback-string"),
    ("spec.transactional", "false", "transactional-string"),
    ("spec.dryRun", 1, "dryrun-int"),
    ("spec.dependsOn", "other", "dependson-string"),
    ("spec.database", "db", "database-string"),
    ("spec.database.secretRef", "db", "secretref-string"),
    ("spec.database.secretRef.name", 5, "secretref-name-int"),
    ("spec.timeouts", "5s", "timeouts-string"),
    ("spec.timeouts.lock", 5, "timeouts-lock-int"),
    ("spec.preflight", True, "preflight-bool"),
    ("spec.preflight.enabled", "no", "preflight-enabled-string"),
    ("spec.backup", "yes", "backup-string"),
    ("spec.historySchema", 7, "historyschema-int"),
    ("spec.allowOutOfOrder", "true", "allowoutoforder-string"),
    ("spec.description", {"a": 1}, "description-object"),
    ("spec.rollbackStrategy", 1, "rollbackstrategy-int"),
    ("spec.sqlFrom", "cm", "sqlfrom-string"),
    ("spec.verifySql", False, "verifysql-bool"),
]

BAD_VERSIONS = [
    "",
    "abc",
    "1..2",
    "-1",
    "1.2.",
    ".1",
    "1 2",
    "v1",
    "1;DROP TABLE x",
    "\uff11",  # a full-width digit one
    "1" * 65,
    "1\n2",
    "0x10",
    "1e5",
]

BAD_SCHEMAS = ["Bad", "a-b", "x" * 64, "", "pg_catalog;--", "1abc", "a b", "ä"]

BAD_NAMES = ["", "UPPER", "../etc", "a_b", "-a", "a" * 254, "a..b/c"]


def _type_cases() -> list[Case]:
    return [
        _refused(f"type-{case_id}", path, _with(migration(), path, value))
        for path, value, case_id in TYPE_ERRORS
    ]


def _pattern_cases() -> list[Case]:
    cases = [
        _refused(f"version-{i}", "spec.version", migration(version=v))
        for i, v in enumerate(BAD_VERSIONS)
    ]
    cases += [
        _refused(f"schema-{i}", "spec.historySchema", migration(historySchema=s))
        for i, s in enumerate(BAD_SCHEMAS)
    ]
    cases += [
        _refused(
            f"secret-name-{i}",
            "spec.database.secretRef.name",
            _with(migration(), "spec.database.secretRef.name", n),
        )
        for i, n in enumerate(BAD_NAMES)
    ]
    cases += [
        _refused(f"depends-name-{i}", "spec.dependsOn", migration(dependsOn=[n]))
        for i, n in enumerate(BAD_NAMES[1:4])
    ]
    cases += [
        _refused(
            "secret-key-slash",
            "spec.database.secretRef.key",
            _with(migration(), "spec.database.secretRef.key", "a/b"),
        ),
        _refused(
            "secret-key-empty",
            "spec.database.secretRef.key",
            _with(migration(), "spec.database.secretRef.key", ""),
        ),
        _refused("metadata-name-upper", "metadata.name", migration("UPPER")),
        _refused("metadata-name-long", "metadata.name", migration("a" * 254)),
        _refused("timeouts-lock-word", "spec.timeouts.lock", migration(timeouts={"lock": "abc"})),
        _refused(
            "timeouts-lock-negative", "spec.timeouts.lock", migration(timeouts={"lock": "-5s"})
        ),
        _refused(
            "timeouts-statement-words",
            "spec.timeouts.statement",
            migration(timeouts={"statement": "1 hour"}),
        ),
        _refused(
            "rollbackstrategy-enum", "spec.rollbackStrategy", migration(rollbackStrategy="magic")
        ),
    ]
    return cases


def _rule_cases() -> list[Case]:
    return [
        _refused("no-database", "spec.database", migration(database=DROP)),
        _refused("no-version", "spec.version", migration(version=DROP)),
        _refused("no-sql", "spec.sql", migration(sql=DROP)),
        _refused(
            "sql-and-sqlfrom",
            "spec.sql",
            migration(sqlFrom={"configMapKeyRef": {"name": "cm", "key": "up.sql"}}),
        ),
        _refused("sql-blank", "spec.sql", migration(sql="   \n\t")),
        _refused("sql-empty", "spec.sql", migration(sql="")),
        _refused("rollbacksql-blank", "spec.rollbackSql", migration(rollbackSql="\n")),
        _refused("verifysql-blank", "spec.verifySql", migration(verifySql=" ")),
        _refused(
            "rollbacksql-and-from",
            "spec.rollbackSql",
            migration(
                rollbackSql="SELECT 1;",
                rollbackSqlFrom={"configMapKeyRef": {"name": "cm", "key": "down.sql"}},
            ),
        ),
        _refused(
            "restore-without-backup", "spec.rollbackStrategy", migration(rollbackStrategy="restore")
        ),
        _refused(
            "dryrun-not-transactional",
            "spec.dryRun",
            migration(dryRun=True, transactional=False),
        ),
        _refused("self-dependency", "spec.dependsOn", migration("selfish", dependsOn=["selfish"])),
        _refused("duplicate-dependency", "spec.dependsOn", migration(dependsOn=["a", "a"])),
        _refused(
            "too-many-dependencies",
            "spec.dependsOn",
            migration(dependsOn=[f"d{i}" for i in range(65)]),
        ),
        _refused("unknown-field", "spec.bogus", migration(bogus=True)),
        _refused(
            "secret-in-other-namespace",
            "spec.database.secretRef.namespace",
            _with(migration(), "spec.database.secretRef.namespace", "kube-system"),
        ),
        _refused("sqlfrom-no-ref", "spec.sqlFrom.configMapKeyRef", migration(sql=DROP, sqlFrom={})),
        _refused(
            "sqlfrom-empty-name",
            "spec.sqlFrom.configMapKeyRef.name",
            migration(sql=DROP, sqlFrom={"configMapKeyRef": {"name": "", "key": "up.sql"}}),
        ),
        _refused(
            "backup-empty-claim",
            "spec.backup.storage.persistentVolumeClaim.claimName",
            migration(backup={"storage": {"persistentVolumeClaim": {"claimName": ""}}}),
        ),
        _refused(
            "backup-path-escape",
            "spec.backup.storage.persistentVolumeClaim.path",
            migration(
                backup={"storage": {"persistentVolumeClaim": {"claimName": "b", "path": "../x"}}}
            ),
        ),
        _refused("spec-string", "spec", _with(migration(), "spec", "x")),
        _refused("spec-list", "spec", _with(migration(), "spec", [])),
    ]


def _size_cases() -> list[Case]:
    return [
        _refused("sql-over-1mib", "spec.sql", migration(sql="-" * SQL_MAX + "\nSELECT 1;")),
        _refused(
            "rollbacksql-over-1mib", "spec.rollbackSql", migration(rollbackSql="-" * (SQL_MAX + 1))
        ),
        _refused("description-over-4kib", "spec.description", migration(description="d" * 4097)),
        _refused(
            "annotations-over-256kib",
            "metadata.annotations",
            _with(migration(), "metadata.annotations", {"a": "x" * 300 * KIB}),
        ),
        _refused(
            "label-value-bad",
            "metadata.labels",
            _with(migration(), "metadata.labels", {"team": "not ok!"}),
        ),
    ]


def _backup_cases() -> list[Case]:
    return [
        _refused("backup-no-storage", "spec.storage", backup(storage=DROP)),
        _refused("backup-no-database", "spec.database", backup(database=DROP)),
        _refused("backup-format-enum", "spec.format", backup(format="tar")),
        _refused(
            "backup-keeplast-zero", "spec.retention.keepLast", backup(retention={"keepLast": 0})
        ),
        _refused("backup-ttl-word", "spec.retention.ttl", backup(retention={"ttl": "forever"})),
        _refused(
            "backup-deadline-zero", "spec.activeDeadlineSeconds", backup(activeDeadlineSeconds=0)
        ),
        _refused("backup-unknown-field", "spec.compress", backup(compress=9)),
        _refused("restore-no-backupref", "spec.backupRef", restore(backupRef=DROP)),
        _refused(
            "restore-backupref-name-bad", "spec.backupRef.name", restore(backupRef={"name": "UP"})
        ),
        _refused("restore-clean-string", "spec.clean", restore(clean="yes")),
    ]


SETTLE_FAILED = frozenset({"SQLError"})


def _accepted_cases() -> list[Case]:
    return [
        Case("sql-syntax-error", [migration(sql="SELEC 1;")], reasons=SETTLE_FAILED),
        Case("sql-division-by-zero", [migration(sql="SELECT 1/0;")], reasons=SETTLE_FAILED),
        Case(
            "sql-copy-from-stdin",
            [migration(sql="CREATE TABLE c (x int);\nCOPY c FROM STDIN;")],
            reasons=frozenset({"SQLError", "EngineError", "TransactionForbidden"}),
        ),
        Case("sql-psql-meta", [migration(sql="\\connect other\nSELECT 1;")], reasons=SETTLE_FAILED),
        Case(
            "sql-set-role-missing", [migration(sql="SET ROLE nobody_here;")], reasons=SETTLE_FAILED
        ),
        Case(
            "verify-false",
            [migration(sql="CREATE TABLE v (x int);", verifySql="SELECT false;")],
            reasons=SETTLE_FAILED,
        ),
        Case(
            "sql-terminates-itself",
            [migration(sql="SELECT pg_terminate_backend(pg_backend_pid());")],
        ),
        Case(
            "missing-secret",
            [migration()],
            no_secret=True,
            reasons=frozenset({"SecretNotFound"}),
        ),
        Case(
            "missing-secret-key",
            [_with(migration(), "spec.database.secretRef.key", "nope")],
            reasons=frozenset({"SecretKeyNotFound", "SecretNotFound"}),
        ),
        Case(
            "missing-secret-with-preflight",
            [migration(preflight={"enabled": True})],
            no_secret=True,
            reasons=frozenset({"SecretNotFound"}),
        ),
        Case(
            "missing-configmap",
            [migration(sql=DROP, sqlFrom={"configMapKeyRef": {"name": "nope", "key": "up.sql"}})],
            reasons=frozenset({"ConfigMapNotFound"}),
        ),
        Case(
            "missing-dependency",
            [migration(dependsOn=["not-there"])],
            reasons=frozenset({"WaitingForDependency"}),
        ),
        Case(
            "cycle-of-two",
            [
                migration("a", version="1", dependsOn=["b"]),
                migration("b", version="2", dependsOn=["a"]),
            ],
            reasons=frozenset({"DependencyCycle"}),
        ),
        Case(
            "cycle-of-three",
            [
                migration("a", version="1", dependsOn=["c"]),
                migration("b", version="2", dependsOn=["a"]),
                migration("c", version="3", dependsOn=["b"]),
            ],
            reasons=frozenset({"DependencyCycle"}),
        ),
        Case(
            "duplicate-version",
            [migration("first"), migration("second")],
            reasons=frozenset({"DuplicateVersion", "Applied", "AlreadyApplied"}),
        ),
        Case(
            "rollback-never-applied",
            [migration(rollback=True, rollbackSql="SELECT 1;")],
            reasons=frozenset({"NotApplied"}),
        ),
        Case(
            "backup-without-storage",
            [migration(backup={"enabled": True})],
            reasons=frozenset({"NoBackupStorage"}),
        ),
        Case(
            "lock-timeout-huge",
            [migration(timeouts={"lock": "99999999h"})],
            may_refuse=True,
            refused="spec.timeouts.lock",
        ),
        Case(
            "restore-of-missing-backup",
            [restore(database={"secretRef": {"name": "SECRET"}})],
        ),
        Case("backup-missing-secret", [backup()], no_secret=True),
    ]


def _immutable_cases() -> list[Case]:
    base = migration(
        "applied", sql="CREATE TABLE applied_t (x int);", rollbackSql="DROP TABLE applied_t;"
    )
    return [
        Case("change-version", [base], refused="spec.version", change={"version": "2"}),
        Case("change-sql", [base], refused="spec.sql", change={"sql": "SELECT 2;"}),
        Case(
            "change-rollbacksql",
            [base],
            refused="spec.rollbackSql",
            change={"rollbackSql": "SELECT 2;"},
        ),
        Case(
            "remove-rollbacksql", [base], refused="spec.rollbackSql", change={"rollbackSql": None}
        ),
        Case(
            "sql-to-sqlfrom",
            [base],
            refused="spec.sql",
            change={"sql": None, "sqlFrom": {"configMapKeyRef": {"name": "cm", "key": "up.sql"}}},
        ),
        Case(
            "change-database",
            [base],
            refused="spec.database",
            may_refuse=True,
            change={"database": {"secretRef": {"name": "elsewhere"}}},
        ),
        Case(
            "change-history-schema",
            [base],
            refused="spec.historySchema",
            may_refuse=True,
            change={"historySchema": "other_history"},
        ),
    ]


def _password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    host = rest.split("@", 1)[-1]
    return f"{scheme}://kubemigrate_pw:{password}@{host}"


def _hostile_secret_cases() -> list[Case]:
    """Secrets whose value is not what a database Secret should hold. Preflight is on: the Job
    reads the Secret too."""

    def case(case_id: str, value: Callable[[str, str], str]) -> Case:
        return Case(f"secret-{case_id}", [migration(preflight={"enabled": True})], secret=value)

    return [
        case("bare-token", lambda url, canary: canary),
        case("api-token", lambda url, canary: f"ghp_{canary}xyz"),
        case("empty", lambda url, canary: ""),
        case("wrong-password", lambda url, canary: _password(url, f"wrong-{canary}")),
        case(
            "closed-port",
            lambda url, canary: f"postgresql://postgres:{canary}@127.0.0.1:1/db",
        ),
        case(
            "key-value-dsn",
            lambda url, canary: f"host=127.0.0.1 port=1 user=x password={canary} dbname=y",
        ),
        case("garbage", lambda url, canary: f"\x00\x01{canary}\n\t'\"; --"),
        case("huge", lambda url, canary: (canary + "-") * 4000),
        case(
            "url-with-ssl-file",
            lambda url, canary: (
                _password(url, canary) + "?sslmode=verify-full&sslrootcert=/etc/passwd"
            ),
        ),
        case(
            "url-unix-socket",
            lambda url, canary: f"postgresql://u:{canary}@/db?host=/nonexistent",
        ),
        case("newline-password", lambda url, canary: _password(url, f"a%0A{canary}%27")),
    ]


def corpus() -> list[Case]:
    return [
        *_type_cases(),
        *_pattern_cases(),
        *_rule_cases(),
        *_size_cases(),
        *_backup_cases(),
        *_accepted_cases(),
        *_immutable_cases(),
        *_hostile_secret_cases(),
    ]


def ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


WORKING = frozenset(
    {
        None,
        "",
        "PreflightRunning",
        "PreflightPassed",
        "Applying",
        "DryRunning",
        "RollingBack",
        "BackingUp",
        "Running",
        "Pending",
    }
)
"""Reasons that say the operator is still at it, not why it stopped."""


def settled(obj: Doc) -> str | None:
    """Why obj stopped (its reason), or None while it is still at it."""
    meta, status = obj["metadata"], obj.get("status") or {}
    if status.get("observedGeneration") != meta.get("generation"):
        return None
    reason = status.get("reason")
    if reason in WORKING:
        return None
    if status.get("phase") == "Failed":
        stalled = {c["type"]: c["status"] for c in status.get("conditions") or []}.get("Stalled")
        return reason if stalled == "True" else None
    return str(reason)
