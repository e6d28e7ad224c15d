"""Configuration problems, reported all at once and each pointing at its source.

A user fixing a YAML file wants every mistake in one run, each with the file,
the document, the line, the resource and the field, so that no message needs
a debugger to be understood.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, and where it is."""

    file: str
    message: str
    document: int | None = None  # 1-based position of the YAML document in the file
    line: int | None = None  # 1-based line of the field, else of the document
    resource: str | None = None  # "Kind/name"
    field: str | None = None  # dotted path, e.g. spec.dataSchemaContext.schema.fields.5.watermark

    def __str__(self) -> str:
        where = [self.file]
        if self.document is not None:
            where.append(f"document {self.document}" + (f" (line {self.line})" if self.line else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        text = ", ".join(where)
        if self.resource:
            text += f", {self.resource}"
        if self.field:
            text += f": {self.field}"
        return f"{text}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found; `str()` gives one line per problem."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def raise_if_any(problems: Sequence[Problem]) -> None:
    """Raise with the problems in reading order: by file, document and line."""
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.file, p.document or 0, p.line or 0)))
