"""SQL split into statements by PostgreSQL's own parser (pglast), and what each statement needs.

Regular expressions cannot tell a semicolon in a dollar-quoted function body from one between
statements; pglast runs the server's grammar, so the split is the one the server would make.
Each statement says whether PostgreSQL refuses it inside a transaction block (PostgreSQL 15,
"cannot be executed inside a transaction block"), whether it is itself transaction control, and
which relations it names, for preflight lock checks.

The text is split by the parser (``split``), then each statement is parsed on its own and
read as the parser's JSON (``parse_sql_json``), plain dicts and lists: building pglast's node
objects costs several times more than parsing, and every migration is split before a run
starts. In that JSON a node in a field of a generic type is wrapped in its type's name
(``{"RangeVar": {...}}``), one in a field of a fixed type is not; false, zero and empty fields
are left out. A plain INSERT, UPDATE, DELETE or MERGE is known by its first word and parsed
only if its tree is asked for; relations are found only when asked for (preflight, the tables a
migration created), since walking a large INSERT's tree is the costly part. Every step is
linear in the size of the text (counting lines from the start for each statement made a 20 MB
file take minutes).

Positions: line numbers are 1-based lines of the given text; the split gives character offsets.
pglast's conversion of a syntax error's position is wrong after multibyte characters, so an
error is located by parsing an ASCII stand-in of the same length (each non-ASCII character
replaced by ``x``, which the lexer treats the same way: as part of an identifier, literal or
comment).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pglast import parser

from kubemigrate.engine.errors import ParseError

__all__ = ["ParseError", "Statement", "forbidden_in_transaction", "split_statements"]

MODERN_SERVER = 120000
"""From PostgreSQL 12, ``ALTER TYPE ... ADD VALUE`` may run inside a transaction block."""

Json = dict[str, Any]
"""The fields of one parse-tree node, as the parser's JSON has them."""


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a migration, with what the engine needs to know before running it."""

    text: str
    index: int  # 1-based position among the statements
    line: int  # 1-based line of the source where the statement starts
    command: str  # e.g. "CREATE TABLE", "CREATE INDEX CONCURRENTLY"
    transaction_forbidden: bool = False
    reason: str | None = None  # why it cannot run in a transaction block
    transaction_control: bool = False  # BEGIN, COMMIT, ROLLBACK, PREPARE TRANSACTION, ...
    index_name: str | None = None  # the index a CREATE INDEX creates, if named
    parsed: Json | None = field(default=None, compare=False, repr=False)
    """The statement's node when it was parsed up front; None for plain DML (see ``tree``)."""

    @cached_property
    def tree(self) -> Json:
        """The statement's node, ``{"CreateStmt": {...}}``: parsed when first asked for, for an
        INSERT, UPDATE, DELETE or MERGE (the bulk of a big data file, whose trees only
        ``relations`` reads)."""
        return self.parsed if self.parsed is not None else _parse_one(self.text)

    @cached_property
    def relations(self) -> tuple[str, ...]:
        """Relations named, schema-qualified where the SQL qualifies (see ``relations_of``)."""
        return relations_of(self.tree)


def split_statements(sql: str, server_version_num: int | None = None) -> list[Statement]:
    """The statements of sql in order; [] for empty or comment-only SQL; ParseError if invalid.

    server_version_num (e.g. 150004) only matters for statements whose rules changed between
    versions; None means a current server.

    The parser splits the text (character offsets, leading comments skipped); each statement
    but plain DML is then parsed on its own for what it is. Every step is linear in the size of
    the text: a 4 MB file of 40,000 INSERTs takes about 0.3 s.
    """
    if not sql.strip():
        return []
    try:
        slices = parser.split(sql, with_parser=True, only_slices=True)
    except parser.ParseError as exc:
        raise _locate_error(sql) from exc
    statements = []
    line, counted = 1, 0  # lines are counted once, from one statement to the next
    for index, part in enumerate(slices, start=1):
        line += sql.count("\n", counted, part.start)
        counted = part.start
        statements.append(_statement(sql[part], index, line, server_version_num))
    return statements


def forbidden_in_transaction(sql: str, server_version_num: int | None = None) -> list[Statement]:
    """The statements of sql that PostgreSQL refuses to run inside a transaction block."""
    return [s for s in split_statements(sql, server_version_num) if s.transaction_forbidden]


# -- positions ---------------------------------------------------------------------------------

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _locate_error(sql: str) -> ParseError:
    """The parser's error, with its position found on an ASCII stand-in of sql (see module doc)."""
    stand_in = _NON_ASCII.sub("x", sql)
    try:
        parser.parse_sql_json(stand_in)
    except parser.ParseError as exc:
        message, offset = str(exc.args[0]), exc.args[1] if len(exc.args) > 1 else None
    else:  # pragma: no cover - the stand-in parses the same way as the original
        message, offset = "syntax error", None
    if offset is None:  # "at end of input": point at the last line with text
        offset = len(sql.rstrip()) - 1 if sql.strip() else 0
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return ParseError(message, line, column)


# -- what a statement is -----------------------------------------------------------------------


_PLAIN_DML = re.compile(
    r"(INSERT|UPDATE|DELETE|MERGE)(?![A-Za-z0-9_$\x80-\U0010ffff])", re.IGNORECASE
)
"""A statement starting with one of these words is that command, whatever follows."""


def _parse_one(text: str) -> Json:
    """The node of the one statement in text."""
    stmts = json.loads(parser.parse_sql_json(text)).get("stmts", [])
    return stmts[0]["stmt"] if stmts else {}


def _statement(text: str, index: int, line: int, server_version_num: int | None) -> Statement:
    dml = _PLAIN_DML.match(text)
    if dml is not None:
        return Statement(text=text, index=index, line=line, command=dml[1].upper())
    tree = _parse_one(text)
    ((kind, node),) = tree.items()
    reason = _forbidden_reason(kind, node, server_version_num or 10**9)
    return Statement(
        text=text,
        index=index,
        line=line,
        command=command_of(kind, node),
        transaction_forbidden=reason is not None,
        reason=reason,
        transaction_control=kind == "TransactionStmt" and node.get("kind") in _TX_CONTROL,
        index_name=(node.get("idxname") or None) if kind == "IndexStmt" else None,
        parsed=tree,
    )


_TX_CONTROL = frozenset(
    {
        "TRANS_STMT_BEGIN",
        "TRANS_STMT_START",
        "TRANS_STMT_COMMIT",
        "TRANS_STMT_ROLLBACK",
        "TRANS_STMT_PREPARE",
        "TRANS_STMT_COMMIT_PREPARED",
        "TRANS_STMT_ROLLBACK_PREPARED",
    }
)
"""Statements that end or start a transaction; SAVEPOINT and RELEASE stay inside one."""


def _option_true(options: list[Json] | None, name: str, default: bool) -> bool:
    """The boolean value of a WITH (...) option, as PostgreSQL's defGetBoolean reads it."""
    for option in options or ():
        elem = option.get("DefElem")
        if elem is not None and elem.get("defname") == name:
            arg = elem.get("arg")
            if arg is None:
                return True
            ((kind, value_node),) = arg.items()
            value = value_node.get("sval") or (
                value_node.get("boolval", False) if kind == "Boolean" else None
            )
            if value is None:
                value = value_node.get("ival", 0) if kind == "Integer" else 1
            return str(value).lower() not in {"false", "off", "0", "no"}
    return default


def _forbidden_reason(kind: str, node: Json, version: int) -> str | None:
    """Why PostgreSQL refuses the statement inside a transaction block, or None."""
    why = _IN_A_TRANSACTION
    if kind in _ALWAYS_FORBIDDEN:
        return _ALWAYS_FORBIDDEN[kind] + why
    check = _FORBIDDEN_WHEN.get(kind)
    reason = check(node, version) if check is not None else None
    return reason or _subscription_reason(kind, node, why) or _other_reason(kind, node, why)


_IN_A_TRANSACTION = " cannot run inside a transaction block"


def _reindex_forbidden(node: Json, _version: int) -> str | None:
    if _option_true(node.get("params"), "concurrently", default=False):
        return "REINDEX CONCURRENTLY" + _IN_A_TRANSACTION
    if node.get("kind") in (
        "REINDEX_OBJECT_SCHEMA",
        "REINDEX_OBJECT_SYSTEM",
        "REINDEX_OBJECT_DATABASE",
    ):
        return f"REINDEX {_enum_words(node['kind'], 'REINDEX_OBJECT_')}" + _IN_A_TRANSACTION
    return None


def _detach_concurrently(node: Json, _version: int) -> str | None:
    if any(
        cmd.get("AlterTableCmd", {}).get("subtype") == "AT_DetachPartition"
        and cmd["AlterTableCmd"].get("def", {}).get("PartitionCmd", {}).get("concurrent")
        for cmd in node.get("cmds", ())
    ):
        return "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY" + _IN_A_TRANSACTION
    return None


def _when(
    condition: Callable[[Json, int], object], what: str, *, suffix: str = ""
) -> Callable[[Json, int], str | None]:
    """A check that refuses ``what`` when ``condition`` holds for the statement's fields."""
    reason = what + _IN_A_TRANSACTION + suffix
    return lambda node, version: reason if condition(node, version) else None


_FORBIDDEN_WHEN: dict[str, Callable[[Json, int], str | None]] = {
    "IndexStmt": _when(lambda node, _: node.get("concurrent"), "CREATE INDEX CONCURRENTLY"),
    "DropStmt": _when(lambda node, _: node.get("concurrent"), "DROP INDEX CONCURRENTLY"),
    "ReindexStmt": _reindex_forbidden,
    "VacuumStmt": _when(lambda node, _: node.get("is_vacuumcmd"), "VACUUM"),
    "ClusterStmt": _when(
        lambda node, _: node.get("relation") is None, "CLUSTER without a table name"
    ),
    "AlterDatabaseStmt": _when(
        lambda node, _: _has_option(node.get("options"), "tablespace"),
        "ALTER DATABASE ... SET TABLESPACE",
    ),
    "AlterEnumStmt": _when(
        lambda node, version: node.get("oldVal") is None and version < MODERN_SERVER,
        "ALTER TYPE ... ADD VALUE",
        suffix=" before PostgreSQL 12",
    ),
    "AlterTableStmt": _detach_concurrently,
}
"""Statements PostgreSQL refuses in a transaction only with certain fields (checked per kind)."""


_ALWAYS_FORBIDDEN = {
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "AlterSystemStmt": "ALTER SYSTEM",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION (of a subscription with a replication slot)",
}


def _subscription_reason(kind: str, node: Json, why: str) -> str | None:
    if kind == "CreateSubscriptionStmt":
        connect = _option_true(node.get("options"), "connect", default=True)
        if _option_true(node.get("options"), "create_slot", default=connect):
            return "CREATE SUBSCRIPTION (creating a replication slot)" + why
    if kind == "AlterSubscriptionStmt":
        if node.get("kind") == "ALTER_SUBSCRIPTION_REFRESH":
            return "ALTER SUBSCRIPTION ... REFRESH PUBLICATION" + why
        if node.get("kind") in (
            "ALTER_SUBSCRIPTION_SET_PUBLICATION",
            "ALTER_SUBSCRIPTION_ADD_PUBLICATION",
            "ALTER_SUBSCRIPTION_DROP_PUBLICATION",
        ) and _option_true(node.get("options"), "refresh", default=True):
            return "ALTER SUBSCRIPTION ... PUBLICATION with refresh" + why
    return None


def _other_reason(kind: str, node: Json, why: str) -> str | None:
    if kind == "DiscardStmt" and node.get("target") == "DISCARD_ALL":
        return "DISCARD ALL" + why
    if kind == "TransactionStmt" and node.get("kind") in (
        "TRANS_STMT_COMMIT_PREPARED",
        "TRANS_STMT_ROLLBACK_PREPARED",
    ):
        return command_of(kind, node) + why
    return None


def _has_option(options: list[Json] | None, name: str) -> bool:
    return any(o.get("DefElem", {}).get("defname") == name for o in options or ())


# -- command names -----------------------------------------------------------------------------

_COMMANDS = {
    "CreateStmt": "CREATE TABLE",
    "CreateForeignTableStmt": "CREATE FOREIGN TABLE",
    "ViewStmt": "CREATE VIEW",
    "CreateSeqStmt": "CREATE SEQUENCE",
    "AlterSeqStmt": "ALTER SEQUENCE",
    "CreateTrigStmt": "CREATE TRIGGER",
    "CreateSchemaStmt": "CREATE SCHEMA",
    "CreateExtensionStmt": "CREATE EXTENSION",
    "CreateEnumStmt": "CREATE TYPE",
    "CompositeTypeStmt": "CREATE TYPE",
    "CreateRangeStmt": "CREATE TYPE",
    "AlterEnumStmt": "ALTER TYPE",
    "CreateDomainStmt": "CREATE DOMAIN",
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "AlterDatabaseStmt": "ALTER DATABASE",
    "AlterDatabaseSetStmt": "ALTER DATABASE",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "CreateRoleStmt": "CREATE ROLE",
    "AlterRoleStmt": "ALTER ROLE",
    "DropRoleStmt": "DROP ROLE",
    "RuleStmt": "CREATE RULE",
    "DoStmt": "DO",
    "CallStmt": "CALL",
    "CopyStmt": "COPY",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
    "TruncateStmt": "TRUNCATE TABLE",
    "LockStmt": "LOCK TABLE",
    "CommentStmt": "COMMENT",
    "VariableSetStmt": "SET",
    "VariableShowStmt": "SHOW",
    "ExplainStmt": "EXPLAIN",
    "ClusterStmt": "CLUSTER",
    "CheckPointStmt": "CHECKPOINT",
    "CreateFdwStmt": "CREATE FOREIGN DATA WRAPPER",
    "CreateForeignServerStmt": "CREATE SERVER",
    "CreatePLangStmt": "CREATE LANGUAGE",
    "DefineStmt": "CREATE",
    "AlterOwnerStmt": "ALTER OWNER",
}


def command_of(kind: str, node: Json) -> str:
    """A short command name in PostgreSQL's style: "CREATE TABLE", "DROP INDEX CONCURRENTLY".

    kind is the statement's node type (``"IndexStmt"``), node its fields."""
    named = _NAMED_BY_FIELDS.get(kind)
    if named is not None:
        return named(node)
    return _COMMANDS.get(kind) or _words_of_class(kind)


def _concurrently(node: Json) -> str:
    return " CONCURRENTLY" if node.get("concurrent") else ""


def _create_table_as(node: Json) -> str:
    if node.get("objtype") == "OBJECT_MATVIEW":
        return "CREATE MATERIALIZED VIEW"
    return "SELECT INTO" if node.get("is_select_into") else "CREATE TABLE AS"


def _reindex(node: Json) -> str:
    concurrently = _option_true(node.get("params"), "concurrently", default=False)
    return "REINDEX CONCURRENTLY" if concurrently else "REINDEX"


_NAMED_BY_FIELDS: dict[str, Callable[[Json], str]] = {
    "IndexStmt": lambda node: "CREATE INDEX" + _concurrently(node),
    "DropStmt": lambda node: f"DROP {_object_words(node.get('removeType'))}" + _concurrently(node),
    "AlterTableStmt": lambda node: f"ALTER {_object_words(node.get('objtype'))}",
    "RenameStmt": lambda node: f"ALTER {_object_words(node.get('renameType'))}",
    "CreateTableAsStmt": _create_table_as,
    "SelectStmt": lambda node: "SELECT INTO" if node.get("intoClause") is not None else "SELECT",
    "ReindexStmt": _reindex,
    "RefreshMatViewStmt": lambda node: "REFRESH MATERIALIZED VIEW" + _concurrently(node),
    "VacuumStmt": lambda node: "VACUUM" if node.get("is_vacuumcmd") else "ANALYZE",
    "CreateFunctionStmt": lambda node: (
        "CREATE PROCEDURE" if node.get("is_procedure") else "CREATE FUNCTION"
    ),
    "GrantStmt": lambda node: "GRANT" if node.get("is_grant") else "REVOKE",
    "GrantRoleStmt": lambda node: "GRANT" if node.get("is_grant") else "REVOKE",
    "TransactionStmt": lambda node: _enum_words(node.get("kind"), "TRANS_STMT_"),
    "DiscardStmt": lambda node: f"DISCARD {_enum_words(node.get('target'), 'DISCARD_')}",
}
"""Commands whose name depends on the statement's fields, not only on its node type."""


_OBJECT_WORDS = {
    "MATVIEW": "MATERIALIZED VIEW",
    "FDW": "FOREIGN DATA WRAPPER",
    "FOREIGN_SERVER": "SERVER",
    "TABCONSTRAINT": "CONSTRAINT",
    "STATISTIC_EXT": "STATISTICS",
}


def _object_words(objtype: str | None) -> str:
    word = _enum_words(objtype, "OBJECT_")
    return _OBJECT_WORDS.get(word.replace(" ", "_"), word)


def _enum_words(value: str | None, prefix: str) -> str:
    """``"TRANS_STMT_ROLLBACK_TO"`` -> ``"ROLLBACK TO SAVEPOINT"``: an enum name as words."""
    words = str(value).removeprefix(prefix).replace("_", " ")
    return "ROLLBACK TO SAVEPOINT" if words == "ROLLBACK TO" else words


def _words_of_class(name: str) -> str:
    """ "AlterDefaultPrivilegesStmt" -> "ALTER DEFAULT PRIVILEGES", for node types not listed."""
    return " ".join(re.findall(r"[A-Z][a-z]*", name.removesuffix("Stmt"))).upper()


# -- relations ---------------------------------------------------------------------------------

_RELATION_DROPS = frozenset(
    {
        "OBJECT_TABLE",
        "OBJECT_INDEX",
        "OBJECT_VIEW",
        "OBJECT_MATVIEW",
        "OBJECT_SEQUENCE",
        "OBJECT_FOREIGN_TABLE",
    }
)


def relations_of(tree: Json) -> tuple[str, ...]:
    """Relations a statement (``{"CreateStmt": {...}}``) names, in order, once each: RangeVars,
    and the objects of DROP TABLE etc.

    Names are as written (schema-qualified only where the SQL qualifies them); unqualified
    references to the statement's own CTEs are left out. Relations used only inside function
    bodies or DO blocks are not visible here.
    """
    nodes = _nodes(tree)
    ctes = {n["ctename"] for n in nodes if "ctename" in n}
    names: dict[str, None] = {}
    for n in nodes:
        # RangeVar is the one node of a raw parse tree with a relname field.
        if n.get("relname"):
            if n.get("schemaname") is None and n["relname"] in ctes:
                continue
            parts = [p for p in (n.get("catalogname"), n.get("schemaname"), n["relname"]) if p]
            names[".".join(parts)] = None
    ((kind, node),) = tree.items()
    if kind == "DropStmt" and node.get("removeType") in _RELATION_DROPS:
        for obj in node.get("objects", ()):
            items = obj.get("List", {}).get("items", ())
            parts = [item.get("String", {}).get("sval", "") for item in items]
            if parts and all(parts):
                names[".".join(parts)] = None
    return tuple(names)


def _nodes(tree: Json) -> list[Json]:
    """The fields of every node in tree (a parse tree in JSON), depth first, tree included."""
    found: list[Json] = []
    stack: list[Any] = [tree]
    while stack:  # a stack, not recursive generators: a large INSERT has thousands of nodes
        obj = stack.pop()
        if isinstance(obj, dict):
            found.append(obj)
            stack.extend(reversed(obj.values()))
        elif isinstance(obj, list):
            stack.extend(reversed(obj))
    return found
