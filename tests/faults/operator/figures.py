"""The figures a fault run measures, printed as a table at its end (see docs/reliability.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    what: str
    value: str
    note: str = ""


FIGURES: list[Figure] = []


def record(what: str, value: object, note: str = "") -> None:
    """Keep one figure for the table (and print it at once, for `-s` runs)."""
    FIGURES.append(Figure(what, str(value), note))


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def table() -> str:
    """The figures as a Markdown table, in the order they were recorded."""
    lines = ["| figure | value | note |", "|---|---|---|"]
    lines += [f"| {f.what} | {f.value} | {f.note} |" for f in FIGURES]
    return "\n".join(lines)
