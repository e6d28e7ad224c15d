"""`debugQuery` and `debugExplain`: what a query logs at start, and which of
its output rows it logs at debug level.

The Streaming Runtime explained the statements `debugExplain` numbers when
the job started, and printed the rows of `debugQuery` (a continuous
`SELECT ... FROM <table>`) as they came. Here `debug_output` reads the same
attributes into a `DebugOutput`, which the dataflow calls:

    debug = debug_output(processor, plan, pipeline)
    debug.log_start(log)                 # once, when the query's steps are built
    debug.log_rows(log, rows)            # for each batch of output rows (column -> value)

`log_rows` costs one level check when debug logging is off. The debug
query may select columns and filter (`SELECT a, b FROM <stream> WHERE
...`) over a stream the Processor writes, named by its `metadata.name` or
its schema's record name (`SELECT * FROM PossibleFraud`). Anything it
cannot honour is a warning, logged at start: it never stops the pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from sqlglot import exp

from config.pipeline import Pipeline, QueryProcessor
from config.sql.context import field_of_type
from config.sql.errors import SqlError
from config.sql.parser import parse_query
from config.sql.plan import Plan, Predicate
from config.sql.predicate import compile_predicate

DEBUG_SHAPE = "SELECT * | <columns> FROM <a stream the Processor writes> [WHERE ...]"


@dataclass(frozen=True)
class DebugRows:
    """The output rows a debug query shows: those passing `predicate`, as `columns`."""

    stream: str
    query: str
    columns: tuple[str, ...]
    predicate: Predicate | None

    def format(self, row: Mapping[str, Any]) -> str | None:
        """The row as the debug query shows it, None when it filters the row out."""
        if self.predicate is not None and not self.predicate.row(row):
            return None
        return ", ".join(f"{c}={row.get(c)!r}" for c in self.columns)


@dataclass(frozen=True)
class DebugOutput:
    """What one query logs for its Processor's debug attributes."""

    processor: str
    start_lines: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    rows: DebugRows | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.start_lines or self.warnings or self.rows)

    def log_start(self, log: logging.Logger) -> None:
        """The explained plan and tables (info), and the warnings."""
        if self.start_lines:
            log.info("%s", "\n".join(self.start_lines))
        for warning in self.warnings:
            log.warning("%s", warning)
        if self.rows is not None:
            log.info("query %s: rows of %s are logged at debug level (%s)", self.processor, self.rows.stream, self.rows.query)

    def log_rows(self, log: logging.Logger, rows: Iterable[Mapping[str, Any]]) -> None:
        """Each output row the debug query selects, at debug level."""
        if self.rows is None or not log.isEnabledFor(logging.DEBUG):
            return
        for row in rows:
            text = self.rows.format(row)
            if text is not None:
                log.debug("%s %s: %s", self.processor, self.rows.stream, text)


def debug_output(processor: QueryProcessor, plan: Plan, pipeline: Pipeline) -> DebugOutput:
    """The debug logging `processor`'s attributes ask for."""
    debug = processor.debug
    lines: list[str] = []
    if debug.explain_plan:
        lines += [f"query {processor.name}: {' '.join(processor.query.split())}", plan.explain()]
    for name in debug.explain_streams:
        stream = pipeline.streams.get(name)
        if stream is not None:
            lines += [f"table {name}:", *(f"  {line}" for line in stream.describe_lines())]
    warnings = list(debug.warnings)
    rows = None
    if debug.query:
        try:
            rows = _debug_rows(debug.query, processor, plan, pipeline)
        except SqlError as exc:
            warnings.append(f"Processor {processor.name}: debugQuery {debug.query!r} is not shown: {exc}")
    return DebugOutput(processor.name, tuple(lines), tuple(warnings), rows)


def _debug_rows(text: str, processor: QueryProcessor, plan: Plan, pipeline: Pipeline) -> DebugRows | None:
    parsed = parse_query(text)
    select = parsed.statement
    if not isinstance(select, exp.Select) or not select.args.get("from_"):
        raise SqlError(text, "a debug query is a SELECT", supported=DEBUG_SHAPE)
    extra = [key for key, value in select.args.items() if value and key not in ("expressions", "from_", "where")]
    if extra:
        raise SqlError(text, f"{extra[0].upper().rstrip('_')} is not supported in a debug query", supported=DEBUG_SHAPE)
    table = select.args["from_"].this
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        raise SqlError(text, "a debug query reads one stream", supported=DEBUG_SHAPE)
    stream = pipeline.streams.get(table.name) or next(
        (s for s in pipeline.streams.values() if s.schema_name == table.name), None
    )
    if stream is None:
        raise SqlError(text, f"unknown table `{table.name}`", supported=DEBUG_SHAPE)
    if stream.name not in processor.debug.outputs:
        raise SqlError(
            text,
            f"`{table.name}` is not written by this Processor; only its output rows can be logged",
            supported=DEBUG_SHAPE,
        )
    if stream.name != plan.sink:
        return None  # another query of the Processor writes it, and logs it
    fields = {c.name: field_of_type(c.name, c.type) for c in plan.projection}
    columns: list[str] = []
    for item in select.expressions:
        if isinstance(item, exp.Star):
            columns += list(fields)
        elif isinstance(item, exp.Column) and item.name in fields:
            columns.append(item.name)
        else:
            raise SqlError(text, f"unsupported item {item.sql()}", supported=f"*, or columns of {', '.join(fields)}")
    where = select.args.get("where")
    predicate = compile_predicate(where.this, fields, text, stream.name) if where else None
    return DebugRows(stream.name, " ".join(text.split()), tuple(dict.fromkeys(columns)), predicate)
