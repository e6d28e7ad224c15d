"""The one error a query can raise: where it is wrong, what, and what works.

A user fixes a query from the message alone, so every `SqlError` carries the
1-based line and column in the query text, the construct found there and,
when there is one, the supported alternative.
"""

from __future__ import annotations

from typing import Callable


class SqlError(Exception):
    """A query the engine cannot run, with its position in the query text."""

    def __init__(
        self,
        query: str,
        message: str,
        *,
        construct: str | None = None,
        supported: str | None = None,
        offset: int | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        if offset is not None:
            line, column = line_and_column(query, offset)
        self.query = query
        self.message = message
        self.construct = construct
        self.supported = supported
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        hint = f"; supported: {self.supported}" if self.supported else ""
        return f"{where}{self.message}{hint}"

    @property
    def offset(self) -> int | None:
        """Character offset of the position in `query`."""
        if self.line is None or self.column is None:
            return None
        lines = self.query.split("\n")
        return sum(len(line) + 1 for line in lines[: self.line - 1]) + self.column - 1

    def relocated(self, text: str, to_text: Callable[[int], int]) -> SqlError:
        """The same error, positioned in another version of the query text
        (the one the user wrote, before stream placeholders were replaced)."""
        offset = self.offset
        return SqlError(
            text,
            self.message,
            construct=self.construct,
            supported=self.supported,
            offset=to_text(offset) if offset is not None else None,
        )

    def excerpt(self) -> str:
        """The offending line with a caret under the column, for terminals."""
        if self.line is None or self.column is None:
            return ""
        text = self.query.splitlines()[self.line - 1] if self.query.splitlines() else ""
        return f"{text}\n{' ' * (self.column - 1)}^"


def line_and_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
