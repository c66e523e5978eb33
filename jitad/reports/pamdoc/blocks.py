"""The document as plain blocks (headings, paragraphs, tables, lists), so each format escapes text its own way."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def table(headers, rows) -> Table:
    """A table whose cells are all strings."""
    return Table(tuple(str(h) for h in headers), tuple(tuple("" if c is None else str(c) for c in r) for r in rows))
