"""A Processor's streaming SQL -> `Plan`, checked against the pipeline's streams.

Two statement shapes are supported (the subset monitoring pipelines use):

    INSERT INTO <stream> SELECT <items>
    FROM TABLE(TUMBLE|HOP|CUMULATE(TABLE <stream>, DESCRIPTOR(<time col>), INTERVAL ...[, INTERVAL ...]))
    [WHERE <predicate>] GROUP BY window_start, window_end[, <cols>]

    INSERT INTO <stream> SELECT <cols> FROM <stream> [WHERE <predicate>]

Anything else is refused with a `SqlError` that points at the construct. An
aggregate without `AS` is named `EXPR$<n>` (n its 0-based position in the
SELECT list), as Flink names it.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Callable, Mapping

from sqlglot import exp
from sqlglot.tokens import TokenType

from config.pipeline import Pipeline, QueryProcessor, SchemaField, StreamSpec
from config.sql.errors import SqlError
from config.sql.parser import ParsedQuery, WindowTableFunction, first_token_offset, offset_of, parse_query, to_sql
from config.sql.plan import Aggregate, OutputColumn, Plan, WindowSpec
from config.sql.predicate import compile_predicate, unknown_column

WINDOW_COLUMNS = ("window_start", "window_end")
WINDOW_COLUMN_TYPE = "long_timestamp-millis"
SHAPES = (
    "INSERT INTO <stream> SELECT ... FROM TABLE(TUMBLE|HOP|CUMULATE(TABLE <stream>, DESCRIPTOR(<time column>), "
    "INTERVAL ...)) [WHERE ...] GROUP BY window_start, window_end[, columns], "
    "or INSERT INTO <stream> SELECT <columns> FROM <stream> [WHERE ...]"
)
AGGREGATES: dict[type[exp.Expr], str] = {
    exp.Count: "COUNT",
    exp.Sum: "SUM",
    exp.Min: "MIN",
    exp.Max: "MAX",
    exp.Avg: "AVG",
}
WINDOW_ARGUMENTS = {"TUMBLE": ("size",), "HOP": ("slide", "size"), "CUMULATE": ("step", "size")}
INTERVAL_UNITS_MS = {
    "MILLISECOND": 1,
    "SECOND": 1_000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}
# Unsupported clauses of a SELECT: tree argument -> (what to call it, keyword
# token to point at, what to do instead).
ONE_STREAM = "one input stream per query; chain Processors through intermediate Streams"
UNSUPPORTED_CLAUSES: dict[str, tuple[str, tuple[TokenType, ...], str]] = {
    "with_": ("WITH (common table expressions)", (TokenType.WITH,), SHAPES),
    "distinct": ("SELECT DISTINCT", (TokenType.DISTINCT,), "GROUP BY the columns within a window"),
    "joins": ("joins", (TokenType.JOIN,), ONE_STREAM),
    "laterals": ("LATERAL", (TokenType.LATERAL,), ONE_STREAM),
    "having": (
        "HAVING",
        (TokenType.HAVING,),
        "a second query over the output stream with WHERE on the aggregate column",
    ),
    "qualify": ("QUALIFY", (TokenType.QUALIFY,), SHAPES),
    "windows": ("WINDOW clauses", (TokenType.WINDOW,), "TABLE(TUMBLE|HOP|CUMULATE(...)) in FROM"),
    "order": (
        "ORDER BY",
        (TokenType.ORDER_BY,),
        "no ORDER BY: window results are emitted by window_end, window_start, group key",
    ),
    "sort": ("SORT BY", (TokenType.SORT_BY,), "no SORT BY"),
    "distribute": ("DISTRIBUTE BY", (TokenType.DISTRIBUTE_BY,), "the output Stream's keys"),
    "cluster": ("CLUSTER BY", (TokenType.CLUSTER_BY,), "the output Stream's keys"),
    "limit": ("LIMIT", (TokenType.LIMIT, TokenType.FETCH), "no LIMIT: a stream has no end"),
    "offset": ("OFFSET", (TokenType.OFFSET,), "no OFFSET: a stream has no end"),
}
WIDENINGS = {("int", "long"), ("int", "double"), ("long", "double"), ("float", "double"), ("int", "float")}


def compile_query(processor: QueryProcessor, pipeline: Pipeline) -> Plan:
    """Parse, check and plan the query of `processor` against `pipeline`'s streams.

    A `SqlError`'s line and column refer to the query as the resource wrote
    it (`raw_query`, with its `[[STREAM:name]]` placeholders), which is the
    text the user edits.
    """
    try:
        return _QueryCompiler(parse_query(processor.query), pipeline).plan()
    except SqlError as error:
        if processor.raw_query and processor.raw_query != processor.query:
            raise error.relocated(processor.raw_query, offset_mapping(processor.query, processor.raw_query)) from None
        raise


def offset_mapping(text: str, original: str) -> Callable[[int], int]:
    """Map offsets in `text` to offsets in `original`, a version of it that
    differs in a few spans (the placeholders); an offset inside a changed
    span maps to that span's start."""
    blocks = SequenceMatcher(None, text, original, autojunk=False).get_opcodes()

    def to_original(offset: int) -> int:
        for tag, start, end, original_start, _original_end in blocks:
            if start <= offset < end or (offset == end == len(text)):
                return original_start + (offset - start if tag == "equal" else 0)
        return len(original)

    return to_original


def type_name(field: SchemaField) -> str:
    """A column's type as plans write it: Avro type, `_logical-type` appended."""
    return f"{field.type}_{field.logical_type}" if field.logical_type else field.type


class _QueryCompiler:
    def __init__(self, parsed: ParsedQuery, pipeline: Pipeline) -> None:
        self.parsed = parsed
        self.query = parsed.text
        self.pipeline = pipeline

    def error(
        self,
        message: str,
        node: exp.Expr | None = None,
        *,
        construct: str | None = None,
        supported: str | None = None,
        offset: int | None = None,
    ) -> SqlError:
        if offset is None and node is not None:
            offset = offset_of(node)
        if construct is None and node is not None:
            construct = to_sql(node)
        return SqlError(self.query, message, construct=construct, supported=supported, offset=offset)

    # -- statement ---------------------------------------------------------

    def plan(self) -> Plan:
        insert = self.statement()
        sink = self.stream_of(insert.this, "INSERT INTO", "write")
        select = self.select_of(insert)
        self.refuse_nested(select)
        source_node, window_node = self.from_of(select)
        source = self.stream_of(source_node, "FROM", "read")
        fields = {f.name: f for f in source.fields}
        window = self.window_of(window_node, source, fields) if window_node is not None else None
        where = select.args.get("where")
        predicate = compile_predicate(where.this, fields, self.query, source.name) if where else None
        group_by = self.group_by_of(select, window, source, fields)
        aggregates, projection = self.select_list(select, window, group_by, source, fields)
        self.check_sink_schema(select, projection, sink)
        return Plan(
            source=source.name,
            sink=sink.name,
            predicate=predicate,
            window=window,
            group_by=tuple(g for g in group_by if g not in WINDOW_COLUMNS),
            aggregates=tuple(aggregates),
            projection=tuple(projection),
        )

    def statement(self) -> exp.Insert:
        statement = self.parsed.statement
        if not isinstance(statement, exp.Insert):
            kind = self.parsed.tokens[0].text.upper() if self.parsed.tokens else "statement"
            raise self.error(
                f"a {kind} statement cannot run as a streaming query",
                construct=kind,
                supported=SHAPES,
                offset=self.parsed.tokens[0].start if self.parsed.tokens else None,
            )
        if statement.args.get("with_"):
            raise self.error(
                "WITH (common table expressions) is not supported",
                construct="WITH",
                supported=SHAPES,
                offset=first_token_offset(self.parsed, TokenType.WITH),
            )
        if statement.args.get("overwrite"):
            raise self.error(
                "INSERT OVERWRITE is not supported on a stream",
                construct="INSERT OVERWRITE",
                supported="INSERT INTO <stream>",
                offset=first_token_offset(self.parsed, TokenType.OVERWRITE),
            )
        if isinstance(statement.this, exp.Schema):
            raise self.error(
                "an INSERT column list is not supported",
                statement.this.expressions[0] if statement.this.expressions else statement.this,
                construct=to_sql(statement.this),
                supported="INSERT INTO <stream> SELECT ... with the columns in the stream's order",
            )
        for key in ("partition", "conflict", "returning", "where", "alternative", "using"):
            if statement.args.get(key):
                raise self.error(f"INSERT ... {key.upper()} is not supported", statement.args[key], supported=SHAPES)
        return statement

    def stream_of(self, table: exp.Expr, clause: str, mode: str) -> StreamSpec:
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            raise self.error(f"{clause} needs a stream name, not {to_sql(table)}", table, supported=SHAPES)
        if table.args.get("db") or table.args.get("catalog"):
            raise self.error(
                f"qualified stream name {to_sql(table)} is not supported",
                table,
                supported=f"the Stream's name alone, `{table.name}`",
            )
        name = table.name
        stream = self.pipeline.streams.get(name)
        if stream is None:
            known = ", ".join(f"`{s}`" for s in self.pipeline.streams) or "none"
            raise self.error(
                f"unknown stream `{name}` in {clause}",
                table,
                construct=name,
                supported=f"the pipeline's streams: {known}",
            )
        if mode == "write" and not stream.writable:
            raise self.error(
                f"stream `{name}` is not writable (streamMode {sorted(stream.modes)})",
                table,
                construct=name,
                supported="a Stream whose streamMode includes write",
            )
        if mode == "read" and not stream.readable:
            raise self.error(
                f"stream `{name}` is not readable (streamMode {sorted(stream.modes)})",
                table,
                construct=name,
                supported="a Stream whose streamMode includes read",
            )
        return stream

    def select_of(self, insert: exp.Insert) -> exp.Select:
        query = insert.expression
        if isinstance(query, exp.SetOperation):
            keyword = type(query).__name__.upper()
            token = {"UNION": TokenType.UNION, "EXCEPT": TokenType.EXCEPT, "INTERSECT": TokenType.INTERSECT}.get(
                keyword
            )
            raise self.error(
                f"{keyword} is not supported",
                construct=keyword,
                supported=SHAPES,
                offset=first_token_offset(self.parsed, token) if token else offset_of(query),
            )
        if isinstance(query, exp.Subquery):
            raise self.error(
                "a parenthesized SELECT is not supported", query, construct="( SELECT ... )", supported=SHAPES
            )
        if not isinstance(query, exp.Select):
            raise self.error(
                f"INSERT INTO needs a SELECT, not {to_sql(query) if query else 'nothing'}",
                query,
                supported=SHAPES,
                offset=offset_of(query) if query else len(self.query),
            )
        for key, (name, tokens, instead) in UNSUPPORTED_CLAUSES.items():
            value = query.args.get(key)
            if value:
                node = value[0] if isinstance(value, list) else value if isinstance(value, exp.Expr) else None
                offset = first_token_offset(self.parsed, *tokens)
                if offset is None and node is not None:
                    offset = offset_of(node)
                raise self.error(f"{name} is not supported", node, construct=name, supported=instead, offset=offset)
        allowed = {"expressions", "from_", "where", "group", *UNSUPPORTED_CLAUSES}
        for key, value in query.args.items():
            if value and key not in allowed:
                node = value if isinstance(value, exp.Expr) else None
                raise self.error(
                    f"unsupported SELECT clause {key.upper()}",
                    node,
                    construct=key.upper(),
                    supported=SHAPES,
                    offset=offset_of(node) if node is not None else None,
                )
        if not query.args.get("from_"):
            raise self.error(
                "SELECT without FROM",
                query,
                construct="SELECT",
                supported=SHAPES,
                offset=first_token_offset(self.parsed, TokenType.SELECT),
            )
        return query

    def refuse_nested(self, select: exp.Select) -> None:
        """Subqueries and OVER windows, wherever they hide in the query."""
        for node in select.walk():
            if node is select:
                continue
            if isinstance(node, (exp.Select, exp.Subquery)):
                raise self.error(
                    "subqueries are not supported",
                    node,
                    construct="subquery",
                    offset=self.keyword_before(node, TokenType.SELECT),
                    supported="one SELECT over one stream; chain Processors through intermediate Streams",
                )
            if isinstance(node, exp.Window):
                raise self.error(
                    f"window function {to_sql(node)} (OVER) is not supported",
                    node,
                    construct="OVER",
                    offset=first_token_offset(self.parsed, TokenType.OVER) or offset_of(node),
                    supported="aggregates over TABLE(TUMBLE|HOP|CUMULATE(...)) with GROUP BY window_start, window_end",
                )

    def keyword_before(self, node: exp.Expr, token_type: TokenType) -> int | None:
        """The last keyword of a kind before a node's first positioned part:
        where a subquery's SELECT is, since the tree does not record it."""
        start = offset_of(node)
        if start is None:
            return None
        before = [t.start for t in self.parsed.tokens if t.token_type == token_type and t.start <= start]
        return before[-1] if before else start

    def from_of(self, select: exp.Select) -> tuple[exp.Table, WindowTableFunction | None]:
        """The source table and, for a windowed query, its window function."""
        source = select.args["from_"].this
        if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
            return source, None
        if (
            isinstance(source, exp.Table)
            and isinstance(source.this, exp.Anonymous)
            and source.this.name.upper() == "TABLE"
        ):
            arguments = source.this.expressions
            if len(arguments) == 1 and isinstance(arguments[0], WindowTableFunction):
                window = arguments[0]
                return window.this, window
            found = to_sql(arguments[0]) if arguments else "nothing"
            raise self.error(
                f"unsupported table function {found}",
                arguments[0] if arguments else source,
                construct=found,
                supported="TABLE(TUMBLE(...)), TABLE(HOP(...)), TABLE(CUMULATE(...))",
            )
        if isinstance(source, exp.Table) and isinstance(source.this, WindowTableFunction):
            raise self.error(
                f"{source.this.kind}(...) must be wrapped in TABLE(...)",
                source.this,
                construct=source.this.kind,
                supported=f"FROM TABLE({source.this.kind}(...))",
            )
        raise self.error(f"unsupported FROM {to_sql(source)}", source, supported=SHAPES)

    # -- window ---------------------------------------------------------------

    def window_of(self, node: WindowTableFunction, source: StreamSpec, fields: Mapping[str, SchemaField]) -> WindowSpec:
        descriptor = node.args["descriptor"]
        if not isinstance(descriptor, exp.Column) or descriptor.table:
            raise self.error("DESCRIPTOR takes one column name", descriptor, supported="DESCRIPTOR(<time column>)")
        column = descriptor.name
        if column not in fields:
            raise unknown_column(self.query, descriptor, column, source.name, fields, "DESCRIPTOR")
        attribute = source.time_attribute
        if attribute is None:
            raise self.error(
                f"stream `{source.name}` declares no event-time attribute, so it cannot be windowed",
                descriptor,
                construct=f"DESCRIPTOR({column})",
                supported="a schema field with a watermark (e.g. watermark: \"`ts` - INTERVAL '3' SECONDS\")",
            )
        if column != attribute.column:
            raise self.error(
                f"DESCRIPTOR({column}) is not the event-time attribute of `{source.name}`",
                descriptor,
                construct=f"DESCRIPTOR({column})",
                supported=f"DESCRIPTOR({attribute.column}), the column with the watermark",
            )
        names = WINDOW_ARGUMENTS[node.kind]
        arguments = node.expressions
        if len(arguments) != len(names):
            expected = ", ".join(f"INTERVAL <{n}>" for n in names)
            where = arguments[len(names)] if len(arguments) > len(names) else node
            extra = " (window offsets are not supported)" if len(arguments) > len(names) else ""
            raise self.error(
                f"{node.kind} takes {len(names)} interval argument(s) after DESCRIPTOR, found {len(arguments)}{extra}",
                where,
                construct=node.kind,
                supported=f"{node.kind}(TABLE <stream>, DESCRIPTOR(<time column>), {expected})",
                offset=self.keyword_before(where, TokenType.INTERVAL) if where is not node else None,
            )
        values = {name: self.interval_ms(argument) for name, argument in zip(names, arguments, strict=True)}
        size = values["size"]
        for divisor in ("slide", "step"):
            if divisor in values and size % values[divisor]:
                raise self.error(
                    f"{node.kind} size ({size} ms) must be a whole multiple of the {divisor} ({values[divisor]} ms)",
                    arguments[-1],
                    supported=f"a size that is n x {divisor}",
                    offset=self.keyword_before(arguments[-1], TokenType.INTERVAL),
                )
        return WindowSpec(
            kind=node.kind, time_column=column, size_ms=size, slide_ms=values.get("slide"), step_ms=values.get("step")
        )

    def interval_ms(self, node: exp.Expr) -> int:
        supported = "INTERVAL 'n' MILLISECOND|SECOND|MINUTE|HOUR|DAY (plural forms too), n a positive whole number"
        if not isinstance(node, exp.Interval) or not isinstance(node.args.get("unit"), exp.Var):
            raise self.error(f"expected an interval, found {to_sql(node)}", node, supported=supported)
        offset = self.keyword_before(node, TokenType.INTERVAL)
        unit = node.args["unit"].name.upper()
        unit = unit[:-1] if unit.endswith("S") else unit
        amount = node.this
        text = amount.name if isinstance(amount, exp.Literal) else ""
        if unit not in INTERVAL_UNITS_MS or not text.strip().isdigit() or int(text) <= 0:
            raise self.error(f"unsupported interval {to_sql(node)}", node, supported=supported, offset=offset)
        return int(text) * INTERVAL_UNITS_MS[unit]

    # -- grouping and the SELECT list -------------------------------------------

    def group_by_of(
        self, select: exp.Select, window: WindowSpec | None, source: StreamSpec, fields: Mapping[str, SchemaField]
    ) -> tuple[str, ...]:
        group = select.args.get("group")
        if window is None:
            if group:
                raise self.error(
                    "GROUP BY without a window function would aggregate forever",
                    group.expressions[0] if group.expressions else group,
                    construct="GROUP BY",
                    offset=first_token_offset(self.parsed, TokenType.GROUP_BY),
                    supported="FROM TABLE(TUMBLE(...)) ... GROUP BY window_start, window_end, <columns>",
                )
            return ()
        if not group or not group.expressions:
            raise self.error(
                "a windowed query must GROUP BY window_start, window_end",
                select.args["from_"].this,
                construct="missing GROUP BY",
                supported="GROUP BY window_start, window_end[, columns]",
            )
        for key in ("grouping_sets", "cube", "rollup", "totals"):
            if group.args.get(key):
                raise self.error(
                    f"GROUP BY {key.upper().replace('_', ' ')} is not supported",
                    group.args[key] if isinstance(group.args[key], exp.Expr) else group,
                    construct=key.upper(),
                    supported="GROUP BY window_start, window_end[, columns]",
                )
        names: list[str] = []
        for item in group.expressions:
            if not isinstance(item, exp.Column) or item.table:
                raise self.error(
                    f"GROUP BY supports plain columns only, not {to_sql(item)}",
                    item,
                    supported="GROUP BY window_start, window_end[, columns]",
                )
            if item.name not in WINDOW_COLUMNS and item.name not in fields:
                raise unknown_column(self.query, item, item.name, source.name, fields, "GROUP BY")
            names.append(item.name)
        missing = [c for c in WINDOW_COLUMNS if c not in names]
        if missing:
            raise self.error(
                f"a windowed query must GROUP BY window_start and window_end; {' and '.join(missing)} missing",
                group.expressions[0],
                construct="GROUP BY",
                offset=first_token_offset(self.parsed, TokenType.GROUP_BY),
                supported="GROUP BY window_start, window_end[, columns]",
            )
        return tuple(dict.fromkeys(names))

    def select_list(
        self,
        select: exp.Select,
        window: WindowSpec | None,
        group_by: tuple[str, ...],
        source: StreamSpec,
        fields: Mapping[str, SchemaField],
    ) -> tuple[list[Aggregate], list[OutputColumn]]:
        aggregates: list[Aggregate] = []
        projection: list[OutputColumn] = []
        for index, item in enumerate(select.expressions):
            value, alias = (item.this, item.alias) if isinstance(item, exp.Alias) else (item, None)
            if isinstance(value, exp.Star):
                raise self.error(
                    "SELECT * is not supported", item, construct="*", supported="the columns listed by name"
                )
            if isinstance(value, exp.Column):
                projection.append(self.column_item(value, alias, window, group_by, source, fields))
            elif type(value) in AGGREGATES:
                aggregate = self.aggregate(value, alias or f"EXPR${index}", window, source, fields)
                aggregates.append(aggregate)
                projection.append(OutputColumn(aggregate.alias, "aggregate", aggregate.alias, aggregate.result_type))
            elif isinstance(value, (exp.Func, exp.Anonymous)):
                name = value.name.upper() if isinstance(value, exp.Anonymous) else value.sql_name()
                raise self.error(
                    f"unsupported function {name}",
                    value,
                    construct=name,
                    supported="COUNT(*), COUNT(col), SUM, MIN, MAX, AVG of a column",
                )
            else:
                raise self.error(
                    f"unsupported SELECT item {to_sql(value)}",
                    value,
                    supported="columns, window_start, window_end, COUNT/SUM/MIN/MAX/AVG, each with an optional AS alias",
                )
        seen: dict[str, exp.Expr] = {}
        for column, item in zip(projection, select.expressions, strict=True):
            if column.name in seen:
                raise self.error(
                    f"duplicate output column `{column.name}`",
                    item,
                    construct=column.name,
                    supported="distinct names (use AS)",
                )
            seen[column.name] = item
        return aggregates, projection

    def column_item(
        self,
        node: exp.Column,
        alias: str | None,
        window: WindowSpec | None,
        group_by: tuple[str, ...],
        source: StreamSpec,
        fields: Mapping[str, SchemaField],
    ) -> OutputColumn:
        if node.table:
            raise self.error(f"qualified column {to_sql(node)} is not supported", node, supported=f"`{node.name}`")
        name = node.name
        output = alias or name
        if window is None:
            if name not in fields:
                raise unknown_column(self.query, node, name, source.name, fields, "SELECT")
            return OutputColumn(output, "column", name, type_name(fields[name]))
        if name in WINDOW_COLUMNS:
            return OutputColumn(output, name, name, WINDOW_COLUMN_TYPE)  # type: ignore[arg-type]
        if name not in fields:
            raise unknown_column(
                self.query, node, name, source.name, {**fields, **dict.fromkeys(WINDOW_COLUMNS)}, "SELECT"
            )
        if name not in group_by:
            raise self.error(
                f"column `{name}` is neither in GROUP BY nor aggregated",
                node,
                construct=name,
                supported=f"add `{name}` to GROUP BY, or aggregate it (COUNT, SUM, MIN, MAX, AVG)",
            )
        return OutputColumn(output, "group", name, type_name(fields[name]))

    def aggregate(
        self,
        node: exp.Expr,
        alias: str,
        window: WindowSpec | None,
        source: StreamSpec,
        fields: Mapping[str, SchemaField],
    ) -> Aggregate:
        function = AGGREGATES[type(node)]
        if window is None:
            raise self.error(
                f"{function} needs a window: a stream has no end to aggregate up to",
                node,
                construct=function,
                supported="FROM TABLE(TUMBLE(...)) ... GROUP BY window_start, window_end",
            )
        argument = node.this
        if isinstance(argument, exp.Distinct):
            raise self.error(
                f"{function}(DISTINCT ...) is not supported",
                node,
                construct=f"{function}(DISTINCT ...)",
                supported=f"{function}(column)",
            )
        if function == "COUNT" and (isinstance(argument, exp.Star) or _is_count_constant(argument)):
            return Aggregate("COUNT", None, alias, "long")
        if not isinstance(argument, exp.Column) or argument.table or node.expressions:
            raise self.error(
                f"{function} takes one column, not {to_sql(node)}",
                node,
                construct=to_sql(node),
                supported=f"{function}(column)" + (" or COUNT(*)" if function == "COUNT" else ""),
            )
        column = argument.name
        field = fields.get(column)
        if field is None:
            raise unknown_column(self.query, argument, column, source.name, fields, function)
        if function in ("SUM", "AVG") and not field.is_numeric:
            raise self.error(
                f"{function}({column}) needs a numeric column; `{column}` is {type_name(field)}",
                node,
                construct=to_sql(node),
                supported=f"{function} over int, long, float or double columns; COUNT, MIN, MAX over any",
            )
        if function in ("MIN", "MAX") and field.type in ("bytes", "boolean"):
            raise self.error(
                f"{function}({column}) over a {field.type} column is not supported",
                node,
                supported=f"{function} over numbers, strings and timestamps",
            )
        return Aggregate(function, column, alias, _result_type(function, field))  # type: ignore[arg-type]

    # -- output schema ------------------------------------------------------------

    def check_sink_schema(self, select: exp.Select, projection: list[OutputColumn], sink: StreamSpec) -> None:
        declared = [f for f in sink.fields if f.in_record]
        if not declared:
            return
        expected = ", ".join(f"{f.name} {type_name(f)}" for f in declared)
        if len(declared) != len(projection):
            raise self.error(
                f"the SELECT list has {len(projection)} column(s), stream `{sink.name}` declares {len(declared)}",
                construct="SELECT",
                offset=first_token_offset(self.parsed, TokenType.SELECT),
                supported=f"the columns of `{sink.name}` in order: {expected}",
            )
        for field, column, item in zip(declared, projection, select.expressions, strict=True):
            if column.name != field.name:
                raise self.error(
                    f"SELECT column `{column.name}` does not match `{field.name}` of stream `{sink.name}`",
                    item,
                    construct=column.name,
                    supported=f"the columns of `{sink.name}` in order: {expected}",
                )
            wanted = type_name(field)
            if column.type != wanted and (column.type, wanted) not in WIDENINGS:
                raise self.error(
                    f"column `{column.name}` is {column.type}, stream `{sink.name}` declares {wanted}",
                    item,
                    construct=column.name,
                    supported=f"a {wanted} value, or declare `{column.name}` as {column.type}",
                )


def _result_type(function: str, field: SchemaField) -> str:
    if function == "COUNT":
        return "long"
    if function == "AVG":
        return "double"
    if function == "SUM":
        return "long" if field.type in ("int", "long") else "double"
    return type_name(field)


def _is_count_constant(node: exp.Expr) -> bool:
    """`COUNT(1)`: a non-NULL constant is counted once per row, like `COUNT(*)`."""
    return isinstance(node, exp.Literal) and not node.is_string
