"""SQL split into statements by PostgreSQL's own parser (pglast), and what each statement needs.

Regular expressions cannot tell a semicolon in a dollar-quoted function body from one between
statements; pglast runs the server's grammar, so the split is the one the server would make.
Each statement says whether PostgreSQL refuses it inside a transaction block (PostgreSQL 15,
"cannot be executed inside a transaction block"), whether it is itself transaction control, and
which relations it names, for preflight lock checks.

Positions: line numbers are 1-based lines of the given text. pglast reports node offsets as
character offsets (it converts the parser's UTF-8 byte offsets), but its conversion of a syntax
error's position is wrong after multibyte characters, so an error is located by parsing an ASCII
stand-in of the same length (each non-ASCII character replaced by ``x``, which the lexer treats
the same way: as part of an identifier, literal or comment).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pglast import ast, enums, parser

from kubemigrate.engine.parse_error import ParseError

__all__ = ["ParseError", "Statement", "forbidden_in_transaction", "split_statements"]

MODERN_SERVER = 120000
"""From PostgreSQL 12, ``ALTER TYPE ... ADD VALUE`` may run inside a transaction block."""


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
    relations: tuple[str, ...] = ()  # relations named, schema-qualified where the SQL qualifies
    index_name: str | None = None  # the index a CREATE INDEX creates, if named


def split_statements(sql: str, server_version_num: int | None = None) -> list[Statement]:
    """The statements of sql in order; [] for empty or comment-only SQL; ParseError if invalid.

    server_version_num (e.g. 150004) only matters for statements whose rules changed between
    versions; None means a current server.
    """
    if not sql.strip():
        return []
    try:
        raws = parser.parse_sql(sql)
    except parser.ParseError as exc:
        raise _locate_error(sql) from exc
    if not raws:
        return []
    token_starts = [t.start for t in parser.scan(sql) if t.name not in _COMMENT_TOKENS]
    statements = []
    for index, raw in enumerate(raws, start=1):
        if raw.stmt is None:  # pragma: no cover - the parser drops empty statements
            continue
        start, end = _span(sql, raw, token_starts)
        statements.append(_describe(raw.stmt, sql[start:end].rstrip(), index,
                                    sql.count("\n", 0, start) + 1, server_version_num))
    return statements


def forbidden_in_transaction(sql: str, server_version_num: int | None = None) -> list[Statement]:
    """The statements of sql that PostgreSQL refuses to run inside a transaction block."""
    return [s for s in split_statements(sql, server_version_num) if s.transaction_forbidden]


# -- positions ---------------------------------------------------------------------------------

_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _span(sql: str, raw: ast.RawStmt, token_starts: list[int]) -> tuple[int, int]:
    """Character offsets of the statement, from its first token (not a leading comment)."""
    location = raw.stmt_location or 0
    end = location + raw.stmt_len if raw.stmt_len else len(sql)
    i = bisect.bisect_left(token_starts, location)
    start = token_starts[i] if i < len(token_starts) and token_starts[i] < end else location
    return start, end


def _locate_error(sql: str) -> ParseError:
    """The parser's error, with its position found on an ASCII stand-in of sql (see module doc)."""
    stand_in = _NON_ASCII.sub("x", sql)
    try:
        parser.parse_sql(stand_in)
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


def _describe(node: ast.Node, text: str, index: int, line: int,
              server_version_num: int | None) -> Statement:
    reason = _forbidden_reason(node, server_version_num or 10**9)
    return Statement(
        text=text,
        index=index,
        line=line,
        command=command_of(node),
        transaction_forbidden=reason is not None,
        reason=reason,
        transaction_control=_is_transaction_control(node),
        relations=relations_of(node),
        index_name=node.idxname if isinstance(node, ast.IndexStmt) and node.idxname else None,
    )


_TX_CONTROL = frozenset({
    enums.TransactionStmtKind.TRANS_STMT_BEGIN,
    enums.TransactionStmtKind.TRANS_STMT_START,
    enums.TransactionStmtKind.TRANS_STMT_COMMIT,
    enums.TransactionStmtKind.TRANS_STMT_ROLLBACK,
    enums.TransactionStmtKind.TRANS_STMT_PREPARE,
    enums.TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED,
    enums.TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED,
})


def _is_transaction_control(node: ast.Node) -> bool:
    """Statements that end or start a transaction; SAVEPOINT and RELEASE stay inside one."""
    return isinstance(node, ast.TransactionStmt) and node.kind in _TX_CONTROL


def _option_true(options: tuple[ast.DefElem, ...] | None, name: str, default: bool) -> bool:
    """The boolean value of a WITH (...) option, as PostgreSQL's defGetBoolean reads it."""
    for opt in options or ():
        if isinstance(opt, ast.DefElem) and opt.defname == name:
            arg = opt.arg
            if arg is None:
                return True
            value = getattr(arg, "sval", None) or getattr(arg, "boolval", None)
            if value is None:
                value = getattr(arg, "ival", 1)
            return str(value).lower() not in {"false", "off", "0", "no"}
    return default


def _forbidden_reason(node: ast.Node, version: int) -> str | None:
    """Why PostgreSQL refuses node inside a transaction block, or None if it does not."""
    why = " cannot run inside a transaction block"
    if isinstance(node, ast.IndexStmt) and node.concurrent:
        return "CREATE INDEX CONCURRENTLY" + why
    if isinstance(node, ast.DropStmt) and node.concurrent:
        return "DROP INDEX CONCURRENTLY" + why
    if isinstance(node, ast.ReindexStmt):
        if _option_true(node.params, "concurrently", default=False):
            return "REINDEX CONCURRENTLY" + why
        kind = enums.ReindexObjectType
        if node.kind in (kind.REINDEX_OBJECT_SCHEMA, kind.REINDEX_OBJECT_SYSTEM,
                         kind.REINDEX_OBJECT_DATABASE):
            return f"REINDEX {_enum_words(node.kind, 'REINDEX_OBJECT_')}" + why
    if isinstance(node, ast.VacuumStmt) and node.is_vacuumcmd:
        return "VACUUM" + why
    if isinstance(node, ast.ClusterStmt) and node.relation is None:
        return "CLUSTER without a table name" + why
    if isinstance(node, ast.CreatedbStmt):
        return "CREATE DATABASE" + why
    if isinstance(node, ast.DropdbStmt):
        return "DROP DATABASE" + why
    if isinstance(node, ast.AlterDatabaseStmt) and _has_option(node.options, "tablespace"):
        return "ALTER DATABASE ... SET TABLESPACE" + why
    if isinstance(node, ast.CreateTableSpaceStmt):
        return "CREATE TABLESPACE" + why
    if isinstance(node, ast.DropTableSpaceStmt):
        return "DROP TABLESPACE" + why
    if isinstance(node, ast.AlterSystemStmt):
        return "ALTER SYSTEM" + why
    if isinstance(node, ast.AlterEnumStmt) and node.oldVal is None and version < MODERN_SERVER:
        return "ALTER TYPE ... ADD VALUE" + why + " before PostgreSQL 12"
    if isinstance(node, ast.AlterTableStmt) and any(
        isinstance(cmd, ast.AlterTableCmd)
        and cmd.subtype == enums.AlterTableType.AT_DetachPartition
        and getattr(cmd.def_, "concurrent", False)
        for cmd in node.cmds or ()
    ):
        return "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY" + why
    return _subscription_reason(node, why) or _other_reason(node, why)


def _subscription_reason(node: ast.Node, why: str) -> str | None:
    if isinstance(node, ast.CreateSubscriptionStmt):
        connect = _option_true(node.options, "connect", default=True)
        if _option_true(node.options, "create_slot", default=connect):
            return "CREATE SUBSCRIPTION (creating a replication slot)" + why
    if isinstance(node, ast.AlterSubscriptionStmt):
        kind = enums.AlterSubscriptionType
        if node.kind == kind.ALTER_SUBSCRIPTION_REFRESH:
            return "ALTER SUBSCRIPTION ... REFRESH PUBLICATION" + why
        if node.kind in (kind.ALTER_SUBSCRIPTION_SET_PUBLICATION,
                         kind.ALTER_SUBSCRIPTION_ADD_PUBLICATION,
                         kind.ALTER_SUBSCRIPTION_DROP_PUBLICATION) and _option_true(
                             node.options, "refresh", default=True):
            return "ALTER SUBSCRIPTION ... PUBLICATION with refresh" + why
    if isinstance(node, ast.DropSubscriptionStmt):
        return "DROP SUBSCRIPTION (of a subscription with a replication slot)" + why
    return None


def _other_reason(node: ast.Node, why: str) -> str | None:
    if isinstance(node, ast.DiscardStmt) and node.target == enums.DiscardMode.DISCARD_ALL:
        return "DISCARD ALL" + why
    if isinstance(node, ast.TransactionStmt) and node.kind in (
        enums.TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED,
        enums.TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED,
    ):
        return f"{command_of(node)}" + why
    return None


def _has_option(options: tuple[ast.DefElem, ...] | None, name: str) -> bool:
    return any(isinstance(o, ast.DefElem) and o.defname == name for o in options or ())


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


def command_of(node: ast.Node) -> str:
    """A short command name in PostgreSQL's style: "CREATE TABLE", "DROP INDEX CONCURRENTLY"."""
    name = type(node).__name__
    if isinstance(node, ast.IndexStmt):
        return "CREATE INDEX CONCURRENTLY" if node.concurrent else "CREATE INDEX"
    if isinstance(node, ast.DropStmt):
        what = _object_words(node.removeType)
        return f"DROP {what} CONCURRENTLY" if node.concurrent else f"DROP {what}"
    if isinstance(node, ast.AlterTableStmt):
        return f"ALTER {_object_words(node.objtype)}"
    if isinstance(node, ast.RenameStmt):
        return f"ALTER {_object_words(node.renameType)}"
    if isinstance(node, ast.CreateTableAsStmt):
        if node.objtype == enums.ObjectType.OBJECT_MATVIEW:
            return "CREATE MATERIALIZED VIEW"
        return "SELECT INTO" if node.is_select_into else "CREATE TABLE AS"
    if isinstance(node, ast.SelectStmt):
        return "SELECT INTO" if node.intoClause is not None else "SELECT"
    if isinstance(node, ast.ReindexStmt):
        concurrently = _option_true(node.params, "concurrently", default=False)
        return "REINDEX CONCURRENTLY" if concurrently else "REINDEX"
    if isinstance(node, ast.RefreshMatViewStmt):
        return "REFRESH MATERIALIZED VIEW" + (" CONCURRENTLY" if node.concurrent else "")
    if isinstance(node, ast.VacuumStmt):
        return "VACUUM" if node.is_vacuumcmd else "ANALYZE"
    if isinstance(node, ast.CreateFunctionStmt):
        return "CREATE PROCEDURE" if node.is_procedure else "CREATE FUNCTION"
    if isinstance(node, ast.GrantStmt | ast.GrantRoleStmt):
        return "GRANT" if node.is_grant else "REVOKE"
    if isinstance(node, ast.TransactionStmt):
        return _enum_words(node.kind, "TRANS_STMT_")
    if isinstance(node, ast.DiscardStmt):
        return f"DISCARD {_enum_words(node.target, 'DISCARD_')}"
    return _COMMANDS.get(name) or _words_of_class(name)


_OBJECT_WORDS = {"MATVIEW": "MATERIALIZED VIEW", "FDW": "FOREIGN DATA WRAPPER",
                 "FOREIGN_SERVER": "SERVER", "TABCONSTRAINT": "CONSTRAINT",
                 "STATISTIC_EXT": "STATISTICS"}


def _object_words(objtype: object) -> str:
    word = _enum_words(objtype, "OBJECT_")
    return _OBJECT_WORDS.get(word.replace(" ", "_"), word)


def _enum_words(value: object, prefix: str) -> str:
    words = str(getattr(value, "name", value)).removeprefix(prefix).replace("_", " ")
    return "ROLLBACK TO SAVEPOINT" if words == "ROLLBACK TO" else words


def _words_of_class(name: str) -> str:
    """"AlterDefaultPrivilegesStmt" -> "ALTER DEFAULT PRIVILEGES", for node types not listed."""
    return " ".join(re.findall(r"[A-Z][a-z]*", name.removesuffix("Stmt"))).upper()


# -- relations ---------------------------------------------------------------------------------

_RELATION_DROPS = frozenset({
    enums.ObjectType.OBJECT_TABLE, enums.ObjectType.OBJECT_INDEX, enums.ObjectType.OBJECT_VIEW,
    enums.ObjectType.OBJECT_MATVIEW, enums.ObjectType.OBJECT_SEQUENCE,
    enums.ObjectType.OBJECT_FOREIGN_TABLE,
})


def relations_of(node: ast.Node) -> tuple[str, ...]:
    """Relations node names, in order, once each: RangeVars, and the objects of DROP TABLE etc.

    Names are as written (schema-qualified only where the SQL qualifies them); unqualified
    references to the statement's own CTEs are left out. Relations used only inside function
    bodies or DO blocks are not visible here.
    """
    ctes = {n.ctename for n in _walk(node) if isinstance(n, ast.CommonTableExpr)}
    names: dict[str, None] = {}
    for n in _walk(node):
        if isinstance(n, ast.RangeVar) and n.relname:
            if n.schemaname is None and n.relname in ctes:
                continue
            parts = [p for p in (n.catalogname, n.schemaname, n.relname) if p]
            names[".".join(parts)] = None
    if isinstance(node, ast.DropStmt) and node.removeType in _RELATION_DROPS:
        for obj in node.objects or ():
            parts = [getattr(p, "sval", "") for p in obj] if isinstance(obj, tuple) else []
            if parts and all(parts):
                names[".".join(parts)] = None
    return tuple(names)


def _walk(obj: object) -> Iterator[ast.Node]:
    """Every node under obj, depth first, obj included."""
    if isinstance(obj, tuple | list):
        for item in obj:
            yield from _walk(item)
    elif isinstance(obj, ast.Node):
        yield obj
        for attr in getattr(type(obj), "__slots__", ()):
            yield from _walk(getattr(obj, attr, None))
