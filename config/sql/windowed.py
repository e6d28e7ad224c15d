"""A windowed aggregate: `SELECT ... FROM TABLE(TUMBLE|HOP|CUMULATE(...))
[WHERE ...] GROUP BY window_start, window_end[, columns] [HAVING ...]`.

HAVING is compiled once, like WHERE, into a predicate over the group
columns, window_start/window_end and the aggregates; an aggregate it uses
that the SELECT list does not is computed too, under a name of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from sqlglot import exp
from sqlglot.tokens import TokenType

from config.pipeline import SchemaField, StreamSpec
from config.sql.context import QueryContext, field_of_type, fields_of, type_name
from config.sql.parser import WindowTableFunction, to_sql
from config.sql.plan import Aggregate, OutputColumn, Predicate, WindowSpec
from config.sql.predicate import ANY_TYPE, compile_predicate, unknown_column

WINDOW_COLUMNS = ("window_start", "window_end")
WINDOW_COLUMN_TYPE = "long_timestamp-millis"
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
HIDDEN_PREFIX = "$agg"  # aggregates only HAVING uses: a name no query can write


@dataclass
class WindowedQuery:
    """The parts of a compiled windowed aggregate, before the output mapping."""

    source: StreamSpec
    predicate: Predicate | None
    window: WindowSpec
    group_by: tuple[str, ...]  # without window_start/window_end
    aggregates: list[Aggregate]
    projection: list[OutputColumn]
    nodes: list[exp.Expr]  # the SELECT item of each projected column, for error positions
    having: Predicate | None


def window_table_function(ctx: QueryContext, source: exp.Expr) -> WindowTableFunction | None:
    """The window TVF of a FROM item, None when the item is not one."""
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Anonymous) and source.this.name.upper() == "TABLE":
        arguments = source.this.expressions
        if len(arguments) == 1 and isinstance(arguments[0], WindowTableFunction):
            return arguments[0]
        found = to_sql(arguments[0]) if arguments else "nothing"
        raise ctx.error(
            f"unsupported table function {found}",
            arguments[0] if arguments else source,
            construct=found,
            supported="TABLE(TUMBLE(...)), TABLE(HOP(...)), TABLE(CUMULATE(...))",
        )
    if isinstance(source, exp.Table) and isinstance(source.this, WindowTableFunction):
        raise ctx.error(
            f"{source.this.kind}(...) must be wrapped in TABLE(...)",
            source.this,
            construct=source.this.kind,
            supported=f"FROM TABLE({source.this.kind}(...))",
        )
    return None


def compile_windowed(ctx: QueryContext, select: exp.Select, function: WindowTableFunction) -> WindowedQuery:
    source = ctx.stream_of(function.this, "FROM", "read")
    fields = fields_of(source)
    window = window_of(ctx, function, source, fields)
    where = select.args.get("where")
    ctx.refuse_subqueries([where.this if where else None, *select.expressions], "WHERE")
    predicate = compile_predicate(where.this, fields, ctx.query, source.name) if where else None
    group_by = group_by_of(ctx, select, source, fields)
    aggregates, projection, nodes = select_list(ctx, select, group_by, source, fields)
    having_node = select.args.get("having")
    having = None
    if having_node is not None:
        ctx.refuse_subqueries([having_node.this], "HAVING")
        having = compile_having(ctx, having_node.this, group_by, aggregates, projection, source, fields)
    return WindowedQuery(
        source=source,
        predicate=predicate,
        window=window,
        group_by=tuple(g for g in group_by if g not in WINDOW_COLUMNS),
        aggregates=aggregates,
        projection=projection,
        nodes=nodes,
        having=having,
    )


# -- window ---------------------------------------------------------------------


def window_of(
    ctx: QueryContext, node: WindowTableFunction, source: StreamSpec, fields: Mapping[str, SchemaField]
) -> WindowSpec:
    descriptor = node.args["descriptor"]
    if not isinstance(descriptor, exp.Column) or descriptor.table:
        raise ctx.error("DESCRIPTOR takes one column name", descriptor, supported="DESCRIPTOR(<time column>)")
    column = descriptor.name
    if column not in fields:
        raise unknown_column(ctx.query, descriptor, column, source.name, fields, "DESCRIPTOR")
    attribute = source.time_attribute
    if attribute is None:
        raise ctx.error(
            f"stream `{source.name}` declares no event-time attribute, so it cannot be windowed",
            descriptor,
            construct=f"DESCRIPTOR({column})",
            supported="a schema field with a watermark (e.g. watermark: \"`ts` - INTERVAL '3' SECONDS\")",
        )
    if column != attribute.column:
        raise ctx.error(
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
        raise ctx.error(
            f"{node.kind} takes {len(names)} interval argument(s) after DESCRIPTOR, found {len(arguments)}{extra}",
            where,
            construct=node.kind,
            supported=f"{node.kind}(TABLE <stream>, DESCRIPTOR(<time column>), {expected})",
            offset=ctx.keyword_before(where, TokenType.INTERVAL) if where is not node else None,
        )
    values = {name: interval_ms(ctx, argument) for name, argument in zip(names, arguments, strict=True)}
    size = values["size"]
    for divisor in ("slide", "step"):
        if divisor in values and size % values[divisor]:
            raise ctx.error(
                f"{node.kind} size ({size} ms) must be a whole multiple of the {divisor} ({values[divisor]} ms)",
                arguments[-1],
                supported=f"a size that is n x {divisor}",
                offset=ctx.keyword_before(arguments[-1], TokenType.INTERVAL),
            )
    return WindowSpec(
        kind=node.kind, time_column=column, size_ms=size, slide_ms=values.get("slide"), step_ms=values.get("step")
    )


def interval_ms(ctx: QueryContext, node: exp.Expr) -> int:
    supported = "INTERVAL 'n' MILLISECOND|SECOND|MINUTE|HOUR|DAY (plural forms too), n a positive whole number"
    if not isinstance(node, exp.Interval) or not isinstance(node.args.get("unit"), exp.Var):
        raise ctx.error(f"expected an interval, found {to_sql(node)}", node, supported=supported)
    offset = ctx.keyword_before(node, TokenType.INTERVAL)
    unit = node.args["unit"].name.upper()
    unit = unit[:-1] if unit.endswith("S") else unit
    amount = node.this
    text = amount.name if isinstance(amount, exp.Literal) else ""
    if unit not in INTERVAL_UNITS_MS or not text.strip().isdigit() or int(text) <= 0:
        raise ctx.error(f"unsupported interval {to_sql(node)}", node, supported=supported, offset=offset)
    return int(text) * INTERVAL_UNITS_MS[unit]


# -- grouping and the SELECT list -------------------------------------------------


def group_by_of(
    ctx: QueryContext, select: exp.Select, source: StreamSpec, fields: Mapping[str, SchemaField]
) -> tuple[str, ...]:
    group = select.args.get("group")
    if not group or not group.expressions:
        raise ctx.error(
            "a windowed query must GROUP BY window_start, window_end",
            select.args["from_"].this,
            construct="missing GROUP BY",
            supported="GROUP BY window_start, window_end[, columns]",
        )
    for key in ("grouping_sets", "cube", "rollup", "totals"):
        if group.args.get(key):
            raise ctx.error(
                f"GROUP BY {key.upper().replace('_', ' ')} is not supported",
                group.args[key] if isinstance(group.args[key], exp.Expr) else group,
                construct=key.upper(),
                supported="GROUP BY window_start, window_end[, columns]",
            )
    names: list[str] = []
    for item in group.expressions:
        if not isinstance(item, exp.Column) or item.table:
            raise ctx.error(
                f"GROUP BY supports plain columns only, not {to_sql(item)}",
                item,
                supported="GROUP BY window_start, window_end[, columns]",
            )
        if item.name not in WINDOW_COLUMNS and item.name not in fields:
            raise unknown_column(ctx.query, item, item.name, source.name, fields, "GROUP BY")
        names.append(item.name)
    missing = [c for c in WINDOW_COLUMNS if c not in names]
    if missing:
        raise ctx.error(
            f"a windowed query must GROUP BY window_start and window_end; {' and '.join(missing)} missing",
            group.expressions[0],
            construct="GROUP BY",
            offset=ctx.keyword_in(select, TokenType.GROUP_BY),
            supported="GROUP BY window_start, window_end[, columns]",
        )
    return tuple(dict.fromkeys(names))


def select_list(
    ctx: QueryContext,
    select: exp.Select,
    group_by: tuple[str, ...],
    source: StreamSpec,
    fields: Mapping[str, SchemaField],
) -> tuple[list[Aggregate], list[OutputColumn], list[exp.Expr]]:
    aggregates: list[Aggregate] = []
    projection: list[OutputColumn] = []
    for index, item in enumerate(select.expressions):
        value, alias = (item.this, item.alias) if isinstance(item, exp.Alias) else (item, None)
        if isinstance(value, exp.Star):
            raise ctx.error(
                "SELECT * is not supported in a windowed aggregate",
                item,
                construct="*",
                supported="window_start, window_end, the GROUP BY columns and aggregates, by name",
            )
        if isinstance(value, exp.Column):
            projection.append(column_item(ctx, value, alias, group_by, source, fields))
        elif type(value) in AGGREGATES:
            aggregate = aggregate_of(ctx, value, alias or f"EXPR${index}", source, fields)
            aggregates.append(aggregate)
            projection.append(OutputColumn(aggregate.alias, "aggregate", aggregate.alias, aggregate.result_type))
        elif isinstance(value, (exp.Func, exp.Anonymous)):
            name = value.name.upper() if isinstance(value, exp.Anonymous) else value.sql_name()
            raise ctx.error(
                f"unsupported function {name}",
                value,
                construct=name,
                supported="COUNT(*), COUNT(col), SUM, MIN, MAX, AVG of a column",
            )
        else:
            raise ctx.error(
                f"unsupported SELECT item {to_sql(value)}",
                value,
                supported="columns, window_start, window_end, COUNT/SUM/MIN/MAX/AVG, each with an optional AS alias",
            )
    check_distinct(ctx, projection, list(select.expressions))
    return aggregates, projection, list(select.expressions)


def check_distinct(ctx: QueryContext, projection: list[OutputColumn], nodes: list[exp.Expr]) -> None:
    seen: set[str] = set()
    for column, item in zip(projection, nodes, strict=True):
        if column.name in seen:
            raise ctx.error(
                f"duplicate output column `{column.name}`",
                item,
                construct=column.name,
                supported="distinct names (use AS)",
            )
        seen.add(column.name)


def column_item(
    ctx: QueryContext,
    node: exp.Column,
    alias: str | None,
    group_by: tuple[str, ...],
    source: StreamSpec,
    fields: Mapping[str, SchemaField],
) -> OutputColumn:
    if node.table:
        raise ctx.error(f"qualified column {to_sql(node)} is not supported", node, supported=f"`{node.name}`")
    name = node.name
    output = alias or name
    if name in WINDOW_COLUMNS:
        return OutputColumn(output, name, name, WINDOW_COLUMN_TYPE)  # type: ignore[arg-type]
    if name not in fields:
        raise unknown_column(ctx.query, node, name, source.name, {**fields, **dict.fromkeys(WINDOW_COLUMNS)}, "SELECT")
    if name not in group_by:
        raise ctx.error(
            f"column `{name}` is neither in GROUP BY nor aggregated",
            node,
            construct=name,
            supported=f"add `{name}` to GROUP BY, or aggregate it (COUNT, SUM, MIN, MAX, AVG)",
        )
    return OutputColumn(output, "group", name, type_name(fields[name]))


def aggregate_of(
    ctx: QueryContext, node: exp.Expr, alias: str, source: StreamSpec, fields: Mapping[str, SchemaField]
) -> Aggregate:
    function = AGGREGATES[type(node)]
    argument = node.this
    if isinstance(argument, exp.Distinct):
        raise ctx.error(
            f"{function}(DISTINCT ...) is not supported",
            node,
            construct=f"{function}(DISTINCT ...)",
            supported=f"{function}(column)",
        )
    if function == "COUNT" and (isinstance(argument, exp.Star) or _is_count_constant(argument)):
        return Aggregate("COUNT", None, alias, "long")
    if not isinstance(argument, exp.Column) or argument.table or node.expressions:
        raise ctx.error(
            f"{function} takes one column, not {to_sql(node)}",
            node,
            construct=to_sql(node),
            supported=f"{function}(column)" + (" or COUNT(*)" if function == "COUNT" else ""),
        )
    column = argument.name
    field = fields.get(column)
    if field is None:
        raise unknown_column(ctx.query, argument, column, source.name, fields, function)
    if field.type == ANY_TYPE:
        return Aggregate(function, column, alias, {"COUNT": "long", "AVG": "double"}.get(function, ANY_TYPE))  # type: ignore[arg-type]
    if function in ("SUM", "AVG") and not field.is_numeric:
        raise ctx.error(
            f"{function}({column}) needs a numeric column; `{column}` is {type_name(field)}",
            node,
            construct=to_sql(node),
            supported=f"{function} over int, long, float or double columns; COUNT, MIN, MAX over any",
        )
    if function in ("MIN", "MAX") and field.type in ("bytes", "boolean"):
        raise ctx.error(
            f"{function}({column}) over a {field.type} column is not supported",
            node,
            supported=f"{function} over numbers, strings and timestamps",
        )
    return Aggregate(function, column, alias, _result_type(function, field))  # type: ignore[arg-type]


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


# -- HAVING -------------------------------------------------------------------------


def compile_having(
    ctx: QueryContext,
    node: exp.Expr,
    group_by: tuple[str, ...],
    aggregates: list[Aggregate],
    projection: list[OutputColumn],
    source: StreamSpec,
    fields: Mapping[str, SchemaField],
) -> Predicate:
    """HAVING over the final values of a group: each aggregate call becomes a
    column standing for that aggregate (the SELECT list's when it has the
    same one, else one computed for HAVING alone); other columns must be
    grouped. `aggregates` gains the ones HAVING alone needs."""
    rewritten = node.copy()
    standing: dict[int, str] = {}  # id of a placeholder identifier -> aggregate alias
    for call in list(rewritten.find_all(*AGGREGATES)):
        if any(inner is not call for inner in call.find_all(*AGGREGATES)):
            raise ctx.error("aggregates cannot be nested", call, supported="one aggregate per value")
        aggregate = aggregate_of(ctx, call, "", source, fields)
        same = next((a for a in aggregates if (a.function, a.column) == (aggregate.function, aggregate.column)), None)
        if same is None:
            same = Aggregate(aggregate.function, aggregate.column, f"{HIDDEN_PREFIX}{len(aggregates)}", aggregate.result_type)
            aggregates.append(same)
        identifier = exp.Identifier(this=same.alias, quoted=True)
        identifier.meta.update({k: v for k, v in _first_meta(call).items() if k in ("line", "col", "start", "end")})
        standing[id(identifier)] = same.alias
        call.replace(exp.Column(this=identifier))
    values = {a.alias: field_of_type(a.alias, a.result_type) for a in aggregates}
    selected_aliases = {c.name for c in projection if c.source == "aggregate"}

    def resolve(column: exp.Column) -> tuple[str, SchemaField]:
        alias = standing.get(id(column.this))
        if alias is not None:
            return alias, values[alias]
        if column.table:
            raise ctx.error(f"qualified column {to_sql(column)} is not supported", column, supported=f"`{column.name}`")
        name = column.name
        if name in WINDOW_COLUMNS:
            return name, field_of_type(name, WINDOW_COLUMN_TYPE)
        if name in group_by and name in fields:
            return name, fields[name]
        if name in selected_aliases and not dict.__contains__(fields, name):
            written = next(a.sql for a in aggregates if a.alias == name)
            raise ctx.error(
                f"HAVING cannot use the SELECT alias `{name}` (Flink does not either)",
                column,
                construct=name,
                supported=f"the aggregate itself: HAVING {written} ...",
            )
        if name not in fields:
            raise unknown_column(ctx.query, column, name, source.name, fields, "HAVING")
        raise ctx.error(
            f"column `{name}` in HAVING is neither in GROUP BY nor aggregated",
            column,
            construct=name,
            supported=f"a GROUP BY column, or an aggregate such as MAX({name})",
        )

    return compile_predicate(rewritten, fields, ctx.query, source.name, resolve=resolve, sql=to_sql(node))


def _first_meta(node: exp.Expr) -> dict:
    positioned = [n for n in node.walk() if n.meta and "start" in n.meta]
    if not positioned:
        return {}
    first = min(positioned, key=lambda n: n.meta["start"])
    return dict(first.meta)
