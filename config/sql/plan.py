"""The plan of a streaming-SQL query: a small immutable description that
`iot-monitoring validate` prints and `dataflows.iot` executes.

`config.sql.compile_query(processor, pipeline)` builds it; the engine reads
only these objects, never the SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

WindowKind = Literal["TUMBLE", "HOP", "CUMULATE"]
AggregateFunction = Literal["COUNT", "SUM", "MIN", "MAX", "AVG"]
ColumnSource = Literal["window_start", "window_end", "group", "aggregate", "column"]


@dataclass(frozen=True)
class WindowSpec:
    """A window table-valued function over the event-time column.

    TUMBLE: `size_ms`. HOP: `slide_ms` and `size_ms` (Flink's HOP(data, col,
    slide, size)). CUMULATE: `step_ms` and `size_ms` (max size).
    """

    kind: WindowKind
    time_column: str
    size_ms: int
    slide_ms: int | None = None
    step_ms: int | None = None

    def windows_of(self, ts: int) -> list[tuple[int, int]]:
        """The [start, end) windows an event time belongs to, by Flink's definitions."""
        if self.kind == "TUMBLE":
            start = ts - ts % self.size_ms
            return [(start, start + self.size_ms)]
        if self.kind == "HOP":
            assert self.slide_ms is not None
            last_start = ts - ts % self.slide_ms
            out = []
            start = last_start
            while start > ts - self.size_ms:
                out.append((start, start + self.size_ms))
                start -= self.slide_ms
            out.reverse()
            return out
        assert self.step_ms is not None
        window_start = ts - ts % self.size_ms
        first_end = ts - ts % self.step_ms + self.step_ms
        return [(window_start, end) for end in range(first_end, window_start + self.size_ms + 1, self.step_ms)]


@dataclass(frozen=True)
class Aggregate:
    """`function(column) AS alias`; `column` None is COUNT(*)."""

    function: AggregateFunction
    column: str | None
    alias: str
    result_type: str  # Avro type of the result: long for COUNT, the column's or double for AVG


@dataclass(frozen=True)
class OutputColumn:
    """One item of the SELECT list, in order.

    `source` says where its value comes from; `ref` is the group column, the
    aggregate alias, or the input column it reads.
    """

    name: str
    source: ColumnSource
    ref: str
    type: str  # Avro type (with logical type as `long_timestamp-millis` style for timestamps)


@dataclass(frozen=True)
class Predicate:
    """The WHERE clause, compiled once.

    `sql` is printable; `row` is a Python callable over a mapping of column
    values (SQL three-valued logic: unknown counts as false); `polars` builds
    the equivalent vectorised `polars.Expr` for batch filtering.
    """

    sql: str
    columns: tuple[str, ...]
    row: Callable[[Mapping[str, Any]], bool]
    polars: Callable[[], Any]

    def __repr__(self) -> str:
        return f"Predicate({self.sql})"


@dataclass(frozen=True)
class Plan:
    """What one INSERT INTO ... SELECT does."""

    source: str  # input stream name
    sink: str  # output stream name
    predicate: Predicate | None
    window: WindowSpec | None  # None: the stateless filter/projection form
    group_by: tuple[str, ...]  # group columns other than window_start/window_end
    aggregates: tuple[Aggregate, ...]
    projection: tuple[OutputColumn, ...]

    @property
    def columns_needed(self) -> tuple[str, ...]:
        """Input columns the plan reads, so decoders can skip the rest."""
        names: list[str] = []
        if self.window:
            names.append(self.window.time_column)
        if self.predicate:
            names.extend(self.predicate.columns)
        names.extend(self.group_by)
        names.extend(a.column for a in self.aggregates if a.column)
        names.extend(c.ref for c in self.projection if c.source == "column")
        return tuple(dict.fromkeys(names))

    def describe(self) -> str:
        """A few lines for `iot-monitoring validate`."""
        lines = [f"source   {self.source}"]
        if self.predicate:
            lines.append(f"filter   {self.predicate.sql}")
        if self.window:
            w = self.window
            extra = f", slide {w.slide_ms} ms" if w.slide_ms else f", step {w.step_ms} ms" if w.step_ms else ""
            lines.append(f"window   {w.kind} on {w.time_column}, size {w.size_ms} ms{extra}")
        if self.group_by:
            lines.append(f"group by {', '.join(self.group_by)}")
        for a in self.aggregates:
            lines.append(f"aggregate {a.function}({a.column or '*'}) AS {a.alias}")
        lines.append("select   " + ", ".join(c.name for c in self.projection))
        lines.append(f"sink     {self.sink}")
        return "\n".join(lines)
