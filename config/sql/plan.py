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
ColumnSource = Literal["window_start", "window_end", "group", "aggregate", "column", "left", "right", "row_number"]
JoinKind = Literal["INNER", "LEFT"]


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

    def describe(self) -> str:
        extra = f", slide {self.slide_ms} ms" if self.slide_ms else f", step {self.step_ms} ms" if self.step_ms else ""
        return f"{self.kind} on {self.time_column}, size {self.size_ms} ms{extra}"


@dataclass(frozen=True)
class Aggregate:
    """`function(column) AS alias`; `column` None is COUNT(*)."""

    function: AggregateFunction
    column: str | None
    alias: str
    result_type: str  # Avro type of the result: long for COUNT, the column's or double for AVG

    @property
    def sql(self) -> str:
        return f"{self.function}({self.column or '*'})"


@dataclass(frozen=True)
class OutputColumn:
    """One item of the SELECT list, in order.

    `source` says where its value comes from; `ref` is the group column, the
    aggregate alias, the input column it reads (for a join: the column of the
    `left` or `right` input), or the ROW_NUMBER() column. `name` is the
    column written: the output Stream's field at that position, which
    `selected_as` names when the SELECT called it otherwise (INSERT INTO maps
    columns by position, as Flink does).
    """

    name: str
    source: ColumnSource
    ref: str
    type: str  # Avro type (with logical type as `long_timestamp-millis` style for timestamps)
    selected_as: str | None = None

    def describe(self, tables: Mapping[str, str] | None = None) -> str:
        """`name`, or `read AS name` when it reads another column (`tables`
        names a join's inputs: {"left": "Plays", "right": "Songs"})."""
        table = (tables or {}).get(self.source)
        read = f"{table}.{self.ref}" if table else self.selected_as
        return f"{read} AS {self.name}" if read and read != self.name else self.name


@dataclass(frozen=True)
class Predicate:
    """A condition (WHERE, HAVING, ON), compiled once.

    `sql` is printable; `row` is a Python callable over a mapping of column
    values (SQL three-valued logic: unknown counts as false); `polars` builds
    the equivalent vectorised `polars.Expr` for batch filtering. `columns`
    are the keys it reads from the mapping (or the frame).
    """

    sql: str
    columns: tuple[str, ...]
    row: Callable[[Mapping[str, Any]], bool]
    polars: Callable[[], Any]

    def __repr__(self) -> str:
        return f"Predicate({self.sql})"


@dataclass(frozen=True)
class JoinInput:
    """One side of a join: a stream, the rows of it that may join, and the
    columns the join keeps of each row.

    `predicate` is over the stream's own column names (a filtered subquery's
    WHERE, and conditions on this side alone moved down from ON/WHERE where
    that keeps the meaning), so it runs on the decoded batch before the join.
    State rows are tuples of `columns`, in this order.
    """

    stream: str
    name: str  # what the query calls it: its alias, else the table name written
    predicate: Predicate | None
    columns: tuple[str, ...]

    def index(self, column: str) -> int:
        return self.columns.index(column)

    @property
    def columns_needed(self) -> tuple[str, ...]:
        """The stream's columns this side reads: its filter's and the kept ones."""
        return tuple(dict.fromkeys((*(self.predicate.columns if self.predicate else ()), *self.columns)))


@dataclass(frozen=True)
class JoinSpec:
    """A regular (unwindowed) stream-stream join on equality keys, with
    Flink's semantics: each side's rows are kept per key, and a pair is
    emitted when the second of its two rows arrives.

    `condition` is the rest of ON and `residual` the WHERE conditions over
    both sides; both read `left.<column>` / `right.<column>` keys.
    `state_ttl_ms` is Flink's `table.exec.state.ttl` (processing time); None
    keeps state forever. `note` says how the written join was read (a LEFT
    JOIN that a WHERE made INNER, as Flink's optimizer does).
    """

    kind: JoinKind
    left: JoinInput
    right: JoinInput
    keys: tuple[tuple[str, str], ...]  # (left column, right column) pairs that must be equal
    condition: Predicate | None = None
    residual: Predicate | None = None
    state_ttl_ms: int | None = None
    note: str | None = None

    @property
    def left_keys(self) -> tuple[str, ...]:
        return tuple(left for left, _ in self.keys)

    @property
    def right_keys(self) -> tuple[str, ...]:
        return tuple(right for _, right in self.keys)

    def describe_lines(self) -> list[str]:
        lines = [f"join     {self.kind} {self.left.stream} AS {self.left.name} with {self.right.stream} AS {self.right.name}"]
        if self.note:
            lines.append(f"         ({self.note})")
        for label, side in (("left", self.left), ("right", self.right)):
            kept = f"{label:<5}    {side.name}: keeps {', '.join(side.columns)}"
            lines.append(kept + (f"; rows where {side.predicate.sql}" if side.predicate else ""))
        pairs = ", ".join(f"{self.left.name}.{a} = {self.right.name}.{b}" for a, b in self.keys)
        lines.append(f"keys     {pairs}")
        if self.condition:
            lines.append(f"on       {self.condition.sql}")
        if self.residual:
            lines.append(f"where    {self.residual.sql} (after joining)")
        ttl = f"{self.state_ttl_ms} ms (table.exec.state.ttl, processing time)" if self.state_ttl_ms else "none: rows are kept forever"
        lines.append(f"state    both sides per key; TTL {ttl}")
        output = "append-only (+I)" if self.kind == "INNER" else "changelog: a null-padded row (+I), retracted (-D) when a match arrives"
        lines.append(f"emits    {output}")
        return lines


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY item of a Top-N. Flink's default null order: NULLS FIRST
    ascending, NULLS LAST descending (NULL is the smallest value)."""

    column: str
    descending: bool = False
    nulls_first: bool | None = None

    @property
    def nulls_come_first(self) -> bool:
        return (not self.descending) if self.nulls_first is None else self.nulls_first

    def describe(self) -> str:
        nulls = "" if self.nulls_first is None else (" NULLS FIRST" if self.nulls_first else " NULLS LAST")
        return f"{self.column} {'DESC' if self.descending else 'ASC'}{nulls}"


@dataclass(frozen=True)
class TopNSpec:
    """Window Top-N: `ROW_NUMBER() OVER (PARTITION BY window_start,
    window_end, k... ORDER BY ...)` over a windowed aggregate, kept where the
    row number is in [`rank_start`, `rank_end`].

    It ranks the rows of one fired window (the windowed aggregate's SELECT
    list, `ranked`), once, when the window fires. Flink breaks ties
    arbitrarily; here ties go by `tie_break` (the other ranked columns)
    ascending, then the group key, so the same input always gives the same
    rows.
    """

    partition_by: tuple[str, ...]
    order_by: tuple[SortKey, ...]
    tie_break: tuple[str, ...]
    rank_start: int
    rank_end: int
    row_number: str  # the ROW_NUMBER() column's name
    row_number_emitted: bool
    ranked: tuple[OutputColumn, ...]

    @property
    def n(self) -> int:
        return self.rank_end

    def describe(self) -> str:
        ranks = f"row {self.rank_start} to {self.rank_end}" if self.rank_start > 1 else f"first {self.rank_end}"
        order = ", ".join(k.describe() for k in self.order_by)
        emitted = f"{self.row_number} emitted" if self.row_number_emitted else f"{self.row_number} not emitted"
        ties = f"; ties by {', '.join(self.tie_break)} ascending" if self.tie_break else ""
        return f"{ranks} per {', '.join(self.partition_by)} by {order}{ties} ({emitted})"


@dataclass(frozen=True)
class Plan:
    """What one INSERT INTO ... SELECT does.

    `source` is the input of a single-input plan (for a join, the left
    input); `sources` lists every input stream. `pending_schemas` names input
    or output streams whose columns come from a schema registry at start: a
    plan with some is provisional, its column checks are repeated once the
    schemas are fetched (`config.resolve.with_registry_schemas`).
    """

    source: str  # input stream name
    sink: str  # output stream name
    predicate: Predicate | None
    window: WindowSpec | None  # None: the stateless filter/projection form, or a join
    group_by: tuple[str, ...]  # group columns other than window_start/window_end
    aggregates: tuple[Aggregate, ...]  # those in the SELECT list, then those only HAVING or ORDER BY use
    projection: tuple[OutputColumn, ...]
    having: Predicate | None = None  # over group columns, window_start/window_end and aggregate aliases
    join: JoinSpec | None = None
    top_n: TopNSpec | None = None
    sources: tuple[str, ...] = ()
    pending_schemas: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sources:
            object.__setattr__(self, "sources", (self.source,))

    @property
    def columns_needed(self) -> tuple[str, ...]:
        """Input columns the plan reads, so decoders can skip the rest (the
        left input's for a join: each side's are `join.<side>.columns` and its
        predicate's)."""
        if self.join:
            return self.join.left.columns_needed
        names: list[str] = []
        if self.window:
            names.append(self.window.time_column)
        if self.predicate:
            names.extend(self.predicate.columns)
        names.extend(self.group_by)
        names.extend(a.column for a in self.aggregates if a.column)
        names.extend(c.ref for c in self.projection if c.source == "column")
        return tuple(dict.fromkeys(names))

    def columns_read(self, stream: str) -> tuple[str, ...]:
        """The columns the plan reads of input `stream` (both inputs' of a self-join)."""
        if self.join:
            sides = [s for s in (self.join.left, self.join.right) if s.stream == stream]
            return tuple(dict.fromkeys(c for side in sides for c in side.columns_needed))
        return self.columns_needed if stream == self.source else ()

    def describe(self) -> str:
        """A few lines for `iot-monitoring validate`."""
        lines = [f"source   {', '.join(self.sources)}"]
        if self.join:
            lines += self.join.describe_lines()
        if self.predicate:
            lines.append(f"filter   {self.predicate.sql}")
        if self.window:
            lines.append(f"window   {self.window.describe()}")
        if self.group_by:
            lines.append(f"group by {', '.join(self.group_by)}")
        selected = {c.ref for c in self.projection if c.source == "aggregate"}
        for a in self.aggregates:
            hidden = "" if a.alias in selected else " (not selected)"
            lines.append(f"aggregate {a.sql} AS {a.alias}{hidden}")
        if self.having:
            lines.append(f"having   {self.having.sql} (on the final aggregates, when the window fires)")
        if self.top_n:
            lines.append(f"top-n    {self.top_n.describe()}")
        lines.append("select   " + self._select_text())
        lines.append(f"sink     {self.sink}")
        if self.pending_schemas:
            lines.append(
                f"pending  columns of {', '.join(self.pending_schemas)} come from the schema registry at start;"
                " they are checked then"
            )
        return "\n".join(lines)

    def _select_text(self) -> str:
        tables = {"left": self.join.left.name, "right": self.join.right.name} if self.join else None
        return ", ".join(c.describe(tables) for c in self.projection)

    def explain(self) -> str:
        """What the plan does, step by step, in words (`debugExplain`)."""
        steps: list[str] = []
        if self.join:
            j = self.join
            for label, side in (("left", j.left), ("right", j.right)):
                where = f", keep rows where {side.predicate.sql}" if side.predicate else ""
                steps.append(f"read `{side.stream}` as {side.name} ({label} input){where}")
            keys = " and ".join(f"{j.left.name}.{a} = {j.right.name}.{b}" for a, b in j.keys)
            ttl = f"for {j.state_ttl_ms} ms of processing time after its last change" if j.state_ttl_ms else "forever"
            steps.append(f"keep every row of both inputs by its key ({keys}), {ttl}")
            condition = f" for which {j.condition.sql}" if j.condition else ""
            if j.kind == "INNER":
                steps.append(
                    f"when a row arrives, pair it with each kept row of the other input with the same key{condition};"
                    " each pair is emitted once, when its second row arrives"
                )
            else:
                steps.append(
                    f"when a {j.left.name} row arrives, pair it with each kept {j.right.name} row with the same key{condition},"
                    f" or emit it padded with NULLs when there is none; a {j.right.name} row that matches a padded row"
                    " retracts it (-D) and emits the pairs"
                )
            if j.residual:
                steps.append(f"keep the joined rows where {j.residual.sql}")
        else:
            steps.append(f"read `{self.source}`")
            if self.predicate:
                steps.append(f"keep the rows where {self.predicate.sql}")
        if self.window:
            keys = ", ".join(("window_start", "window_end", *self.group_by))
            aggregates = ", ".join(f"{a.sql} AS {a.alias}" for a in self.aggregates)
            steps.append(f"assign each row to its {self.window.describe()} window(s)")
            steps.append(f"per {keys}: {aggregates}")
            steps.append("when the watermark reaches a window's end - 1 ms, the window fires once with its final values")
            if self.having:
                steps.append(f"of a fired window, emit only the groups where {self.having.sql}")
            if self.top_n:
                steps.append(f"of a fired window, rank the rows: {self.top_n.describe()}")
        steps.append(f"write {self._select_text()} to `{self.sink}`")
        return "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
