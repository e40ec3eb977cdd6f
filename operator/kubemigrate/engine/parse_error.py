"""The error for SQL PostgreSQL's grammar rejects, apart from the parser so that catching it does
not cost importing pglast (the CLI's start-up time matters: it runs in every Job and CI step)."""

from __future__ import annotations


class ParseError(ValueError):
    """SQL the PostgreSQL grammar rejects; ``line`` is 1-based, ``message`` the parser's."""

    def __init__(self, message: str, line: int, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        where = f"line {line}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")
