"""A Processor's streaming SQL -> `Plan`, checked against the pipeline's streams.

The statement shapes supported (those the Streaming Runtime's samples use):

    INSERT INTO <stream> SELECT <items>
    FROM TABLE(TUMBLE|HOP|CUMULATE(TABLE <stream>, DESCRIPTOR(<time col>), INTERVAL ...[, INTERVAL ...]))
    [WHERE <predicate>] GROUP BY window_start, window_end[, <cols>] [HAVING <predicate>]

    INSERT INTO <stream> SELECT <cols> | * FROM <relation> [WHERE <predicate>]

    INSERT INTO <stream> SELECT <cols> FROM <relation> [AS a] [INNER | LEFT [OUTER]] JOIN <relation> [AS b]
    ON a.k = b.k [AND ...] [WHERE <predicate>]

    INSERT INTO <stream> SELECT <cols> FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start,
    window_end[, k...] ORDER BY <col> [DESC]) AS row_num FROM (<windowed aggregate>)) WHERE row_num <= N

where a relation is a stream (by its `metadata.name`, which [[STREAM:name]]
becomes, or its schema's record name) or a filtered subquery over one,
`(SELECT * FROM <stream> WHERE ...) AS alias`. INSERT INTO maps the SELECT
list to the output Stream's fields by position, as Flink does. Anything
else is refused with a `SqlError` that points at the construct. An
aggregate without `AS` is named `EXPR$<n>` (n its 0-based position in the
SELECT list), as Flink names it.
"""

from __future__ import annotations

from dataclasses import replace
from difflib import SequenceMatcher
from typing import Callable

from sqlglot import exp
from sqlglot.tokens import TokenType

from config.metadata import header_of, readable_origin
from config.pipeline import Pipeline, QueryProcessor, StreamSpec
from config.sql.conjuncts import all_of
from config.sql.context import SHAPES, QueryContext, type_name
from config.sql.errors import SqlError
from config.sql.joins import compile_join
from config.sql.parser import first_token_offset, offset_of, parse_query, to_sql
from config.sql.plan import OutputColumn, Plan, TopNSpec
from config.sql.predicate import ANY_TYPE, compile_predicate
from config.sql.relations import Scope, relation_of
from config.sql.topn import compile_top_n, ranking_select
from config.sql.windowed import WINDOW_COLUMNS, WindowedQuery, check_distinct, compile_windowed, window_table_function

__all__ = ["compile_query", "offset_mapping", "type_name", "WINDOW_COLUMNS"]

# Unsupported clauses of a SELECT: tree argument -> (what to call it, keyword
# token to point at, what to do instead).
CHAIN = "chain Processors through intermediate Streams"
UNSUPPORTED_CLAUSES: dict[str, tuple[str, tuple[TokenType, ...], str]] = {
    "with_": ("WITH (common table expressions)", (TokenType.WITH,), SHAPES),
    "distinct": ("SELECT DISTINCT", (TokenType.DISTINCT,), "GROUP BY the columns within a window"),
    "joins": ("a join here", (TokenType.JOIN,), f"a join of two relations at the top of a query; {CHAIN}"),
    "laterals": ("LATERAL", (TokenType.LATERAL,), CHAIN),
    "having": ("HAVING without a windowed GROUP BY", (TokenType.HAVING,), "HAVING after GROUP BY window_start, window_end"),
    "qualify": ("QUALIFY", (TokenType.QUALIFY,), SHAPES),
    "windows": ("WINDOW clauses", (TokenType.WINDOW,), "TABLE(TUMBLE|HOP|CUMULATE(...)) in FROM"),
    "order": (
        "ORDER BY",
        (TokenType.ORDER_BY,),
        "no ORDER BY: window results are emitted by window_end, window_start, group key; "
        "for the first N of each window, a Window Top-N (ROW_NUMBER() OVER (...))",
    ),
    "sort": ("SORT BY", (TokenType.SORT_BY,), "no SORT BY"),
    "distribute": ("DISTRIBUTE BY", (TokenType.DISTRIBUTE_BY,), "the output Stream's keys"),
    "cluster": ("CLUSTER BY", (TokenType.CLUSTER_BY,), "the output Stream's keys"),
    "limit": ("LIMIT", (TokenType.LIMIT, TokenType.FETCH), "no LIMIT: a stream has no end; a Window Top-N ranks per window"),
    "offset": ("OFFSET", (TokenType.OFFSET,), "no OFFSET: a stream has no end"),
    "group": ("GROUP BY without a window function", (TokenType.GROUP_BY,), "FROM TABLE(TUMBLE(...)) ... GROUP BY window_start, window_end, <columns>"),
    "where": ("WHERE here", (TokenType.WHERE,), SHAPES),
}
WIDENINGS = {("int", "long"), ("int", "double"), ("long", "double"), ("float", "double"), ("int", "float")}
STATELESS = {"expressions", "from_", "where"}
WINDOWED = {"expressions", "from_", "where", "group", "having"}
JOINED = {"expressions", "from_", "joins", "where"}


def compile_query(processor: QueryProcessor, pipeline: Pipeline) -> Plan:
    """Parse, check and plan the query of `processor` against `pipeline`'s streams.

    A `SqlError`'s line and column refer to the query as the resource wrote
    it (`raw_query`, with its `[[STREAM:name]]` placeholders), which is the
    text the user edits.
    """
    try:
        return _QueryCompiler(QueryContext(parse_query(processor.query), pipeline, processor)).plan()
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


class _QueryCompiler:
    def __init__(self, ctx: QueryContext) -> None:
        self.ctx = ctx
        self.error = ctx.error

    # -- statement ---------------------------------------------------------

    def plan(self) -> Plan:
        insert = self.statement()
        sink = self.ctx.stream_of(insert.this, "INSERT INTO", "write")
        select = self.select_of(insert)
        middle = ranking_select(select)
        if middle is not None:
            plan = self.top_n_plan(select, middle, sink)
        elif select.args.get("joins"):
            plan = self.join_plan(select, sink)
        else:
            function = window_table_function(self.ctx, select.args["from_"].this)
            plan = self.windowed_plan(select, function, sink) if function else self.stateless_plan(select, sink)
        self.refuse_unreadable_metadata(plan)
        return replace(plan, pending_schemas=tuple(self.ctx.pending))

    def refuse_unreadable_metadata(self, plan: Plan) -> None:
        """A column the query reads from Kafka metadata must be one a record has
        (`engine.metadata`): its timestamp, topic, partition, offset, or a header."""
        for name in dict.fromkeys(plan.sources):
            stream = self.ctx.pipeline.stream(name)
            for column in plan.columns_read(name):
                found = stream.field_named(column)
                if found is None or found.in_record or readable_origin(found):
                    continue
                offset = next((i.meta["start"] for i in self.ctx.parsed.statement.find_all(exp.Identifier)
                               if i.name == column and i.meta and "start" in i.meta), None)
                header = header_of(found) is not None
                raise self.error(
                    f"column `{column}` of `{stream.name}` reads the Kafka {'header' if header else 'metadata'}"
                    f" {found.metadata_from!r}" + (f" as {type_name(found)}" if header else "") + ", which is not supported",
                    construct=column,
                    offset=offset if offset is not None else first_token_offset(self.ctx.parsed, TokenType.SELECT),
                    supported=("a header as long, int, string or bytes" if header else
                               "metadata from timestamp, topic, partition, offset or header.<name>"),
                )

    def statement(self) -> exp.Insert:
        statement = self.ctx.parsed.statement
        tokens = self.ctx.parsed.tokens
        if not isinstance(statement, exp.Insert):
            kind = tokens[0].text.upper() if tokens else "statement"
            raise self.error(
                f"a {kind} statement cannot run as a streaming query",
                construct=kind,
                supported=SHAPES,
                offset=tokens[0].start if tokens else None,
            )
        if statement.args.get("with_"):
            raise self.error(
                "WITH (common table expressions) is not supported",
                construct="WITH",
                supported=SHAPES,
                offset=first_token_offset(self.ctx.parsed, TokenType.WITH),
            )
        if statement.args.get("overwrite"):
            raise self.error(
                "INSERT OVERWRITE is not supported on a stream",
                construct="INSERT OVERWRITE",
                supported="INSERT INTO <stream>",
                offset=first_token_offset(self.ctx.parsed, TokenType.OVERWRITE),
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
                offset=first_token_offset(self.ctx.parsed, token) if token else offset_of(query),
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
                offset=offset_of(query) if query else len(self.ctx.query),
            )
        if not query.args.get("from_"):
            raise self.error(
                "SELECT without FROM",
                query,
                construct="SELECT",
                supported=SHAPES,
                offset=first_token_offset(self.ctx.parsed, TokenType.SELECT),
            )
        return query

    def check_clauses(self, select: exp.Select, allowed: set[str], shape: str = SHAPES) -> None:
        """Refuse every clause of `select` the shape does not take, at its keyword."""
        for key, (name, tokens, instead) in UNSUPPORTED_CLAUSES.items():
            value = select.args.get(key)
            if value and key not in allowed:
                node = value[0] if isinstance(value, list) else value if isinstance(value, exp.Expr) else None
                offset = self.ctx.keyword_in(select, *tokens)
                if offset is None and node is not None:
                    offset = offset_of(node)
                if key == "joins" and node is not None:
                    offset = self.ctx.keyword_before(node, TokenType.JOIN) or offset
                raise self.error(f"{name} is not supported", node, construct=name, supported=instead, offset=offset)
        for key, value in select.args.items():
            if value and key not in allowed and key not in UNSUPPORTED_CLAUSES:
                node = value if isinstance(value, exp.Expr) else None
                raise self.error(
                    f"unsupported SELECT clause {key.upper()}",
                    node,
                    construct=key.upper(),
                    supported=shape,
                    offset=offset_of(node) if node is not None else None,
                )
        if not select.args.get("from_"):
            raise self.error(
                "SELECT without FROM", select, construct="SELECT", supported=shape,
                offset=self.ctx.keyword_before(select, TokenType.SELECT),
            )

    # -- shapes ---------------------------------------------------------------

    def stateless_plan(self, select: exp.Select, sink: StreamSpec) -> Plan:
        self.check_clauses(select, STATELESS)
        relation = relation_of(self.ctx, select.args["from_"].this)
        scope = Scope(self.ctx, [relation])
        where = select.args.get("where")
        self.ctx.refuse_subqueries([where.this if where else None, *select.expressions], "WHERE")
        stream = relation.stream

        def outer(column: exp.Column):
            _, name, found = scope.resolve(column, "WHERE")
            return relation.origin.get(name, name), found

        def inner(column: exp.Column):
            assert relation.inner is not None
            _, name, found = relation.inner.resolve(column, "WHERE")
            return name, found

        predicates = [compile_predicate(node, {}, self.ctx.query, stream.name, resolve=inner) for node in relation.filters]
        if where is not None:
            predicates.append(compile_predicate(where.this, {}, self.ctx.query, stream.name, resolve=outer))
        projection: list[OutputColumn] = []
        nodes: list[exp.Expr] = []
        for item in select.expressions:
            value, alias = (item.this, item.alias) if isinstance(item, exp.Alias) else (item, None)
            if isinstance(value, exp.Star) or (isinstance(value, exp.Column) and isinstance(value.this, exp.Star)):
                if stream.schema_pending:
                    raise self.error(
                        f"SELECT * over `{relation.name}` needs its columns, which come from the schema registry at start",
                        item, construct="*", supported="the columns listed by name",
                    )
                for name, found in relation.columns.items():
                    projection.append(OutputColumn(name, "column", relation.origin[name], type_name(found)))
                    nodes.append(item)
            elif isinstance(value, exp.Column):
                _, name, found = scope.resolve(value, "SELECT")
                projection.append(
                    OutputColumn(alias or name, "column", relation.origin.get(name, name), _column_type(found))
                )
                nodes.append(item)
            elif isinstance(value, (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg)):
                function = type(value).__name__.upper()
                raise self.error(
                    f"{function} needs a window: a stream has no end to aggregate up to",
                    value,
                    construct=function,
                    supported="FROM TABLE(TUMBLE(...)) ... GROUP BY window_start, window_end",
                )
            elif isinstance(value, (exp.Func, exp.Anonymous)):
                name = value.name.upper() if isinstance(value, exp.Anonymous) else value.sql_name()
                raise self.error(
                    f"unsupported function {name}", value, construct=name, supported="columns, each with an optional AS"
                )
            else:
                raise self.error(
                    f"unsupported SELECT item {to_sql(value)}", value, supported="columns, each with an optional AS"
                )
        check_distinct(self.ctx, projection, nodes)
        return Plan(
            source=stream.name,
            sink=sink.name,
            predicate=all_of(predicates),
            window=None,
            group_by=(),
            aggregates=(),
            projection=self.to_sink(projection, nodes, sink),
        )

    def windowed_plan(self, select: exp.Select, function, sink: StreamSpec) -> Plan:
        self.check_clauses(select, WINDOWED)
        windowed = compile_windowed(self.ctx, select, function)
        return self.windowed_result(windowed, windowed.projection, windowed.nodes, sink)

    def windowed_result(
        self, windowed: WindowedQuery, projection: list[OutputColumn], nodes: list[exp.Expr], sink: StreamSpec,
        top_n: TopNSpec | None = None,
    ) -> Plan:
        return Plan(
            source=windowed.source.name,
            sink=sink.name,
            predicate=windowed.predicate,
            window=windowed.window,
            group_by=windowed.group_by,
            aggregates=tuple(windowed.aggregates),
            projection=self.to_sink(projection, nodes, sink),
            having=windowed.having,
            top_n=top_n,
        )

    def join_plan(self, select: exp.Select, sink: StreamSpec) -> Plan:
        self.check_clauses(select, JOINED)
        compiled = compile_join(self.ctx, select, self.ctx.processor)
        join = compiled.join
        if join.kind == "LEFT" and not sink.upsert:
            raise self.error(
                f"a LEFT JOIN emits a changelog (a null-padded row, retracted when its match arrives), which the"
                f" append-only kafka stream `{sink.name}` cannot take (Flink refuses it too)",
                select.args["joins"][0].this,
                construct="LEFT JOIN",
                offset=self.ctx.keyword_in(select, TokenType.LEFT),
                supported="INNER JOIN, or write to a Stream with ddl.connector: upsert-kafka and a primaryKey",
            )
        return Plan(
            source=compiled.streams[0],
            sink=sink.name,
            predicate=None,
            window=None,
            group_by=(),
            aggregates=(),
            projection=self.to_sink(compiled.projection, compiled.nodes, sink),
            join=join,
            sources=compiled.streams,
        )

    def top_n_plan(self, select: exp.Select, middle: exp.Select, sink: StreamSpec) -> Plan:
        compiled = compile_top_n(self.ctx, select, middle, self.check_clauses)
        check_distinct(self.ctx, compiled.projection, compiled.nodes)
        return self.windowed_result(compiled.windowed, compiled.projection, compiled.nodes, sink, compiled.top_n)

    # -- output schema ------------------------------------------------------------

    def to_sink(self, projection: list[OutputColumn], nodes: list[exp.Expr], sink: StreamSpec) -> tuple[OutputColumn, ...]:
        """INSERT INTO maps the SELECT list to the output Stream's fields by
        position, as Flink does: the columns take the Stream's field names;
        their count must match and each type must fit."""
        declared = [f for f in sink.fields if f.in_record]
        if not declared:
            return tuple(projection)
        expected = ", ".join(f"{f.name} {type_name(f)}" for f in declared)
        if len(declared) != len(projection):
            raise self.error(
                f"the SELECT list has {len(projection)} column(s), stream `{sink.name}` declares {len(declared)}",
                construct="SELECT",
                offset=first_token_offset(self.ctx.parsed, TokenType.SELECT),
                supported=f"the columns of `{sink.name}` in order: {expected}",
            )
        mapped = []
        for field, column, item in zip(declared, projection, nodes, strict=True):
            wanted = type_name(field)
            if column.type not in (wanted, ANY_TYPE) and (column.type, wanted) not in WIDENINGS:
                raise self.error(
                    f"column `{column.name}` is {column.type}, stream `{sink.name}` declares {wanted}"
                    f" for `{field.name}` (position {len(mapped) + 1})",
                    item,
                    construct=column.name,
                    supported=f"a {wanted} value, or declare `{field.name}` as {column.type}",
                )
            selected = column.name if column.name != field.name else None
            mapped.append(replace(column, name=field.name, selected_as=selected))
        return tuple(mapped)


def _column_type(found) -> str:
    return ANY_TYPE if found.type == ANY_TYPE else type_name(found)
