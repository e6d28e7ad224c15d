"""Window Top-N:

    SELECT <columns> FROM (
      SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end[, k...]
                                   ORDER BY <column> [ASC|DESC] [NULLS FIRST|LAST], ...) AS row_num
      FROM (<windowed aggregate>)
    ) WHERE row_num <= N

Flink's rank range forms are read: `row_num <= N`, `< N`, `= N`, a lower
bound with `>`/`>=`, and `BETWEEN a AND b`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlglot import exp
from sqlglot.tokens import TokenType

from config.sql.conjuncts import conjuncts
from config.sql.context import QueryContext
from config.sql.parser import to_sql
from config.sql.plan import OutputColumn, SortKey, TopNSpec
from config.sql.windowed import WindowedQuery, compile_windowed, window_table_function

TOP_N_SHAPE = (
    "SELECT ... FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end[, columns] "
    "ORDER BY <column> [DESC]) AS row_num FROM (<windowed aggregate>)) WHERE row_num <= N"
)
RANGE_SHAPE = "row_num <= N, row_num < N, row_num = N, row_num BETWEEN a AND b (with an optional lower bound)"
CheckClauses = Callable[[exp.Select, set[str], str], None]


@dataclass
class CompiledTopN:
    windowed: WindowedQuery
    top_n: TopNSpec
    projection: list[OutputColumn]
    nodes: list[exp.Expr]


def ranking_select(select: exp.Select) -> exp.Select | None:
    """The SELECT with ROW_NUMBER() OVER (...) that `select` reads from, if it reads one."""
    source = select.args.get("from_")
    item = source.this if source else None
    if isinstance(item, exp.Subquery) and isinstance(item.this, exp.Select):
        if any(isinstance(e.unalias(), exp.Window) for e in item.this.expressions):
            return item.this
    return None


def compile_top_n(ctx: QueryContext, outer: exp.Select, middle: exp.Select, check: CheckClauses) -> CompiledTopN:
    check(outer, {"expressions", "from_", "where"}, TOP_N_SHAPE)
    check(middle, {"expressions", "from_"}, TOP_N_SHAPE)
    inner_item = middle.args["from_"].this
    if isinstance(inner_item, exp.Subquery) and isinstance(inner_item.this, exp.Select):
        inner = inner_item.this
        function = window_table_function(ctx, inner.args["from_"].this) if inner.args.get("from_") else None
        if function is None:
            raise ctx.error(
                "a Top-N ranks the rows of a windowed aggregate",
                inner_item,
                construct="subquery",
                offset=ctx.keyword_before(inner_item, TokenType.SELECT),
                supported=TOP_N_SHAPE,
            )
        check(inner, {"expressions", "from_", "where", "group", "having"}, TOP_N_SHAPE)
        windowed = compile_windowed(ctx, inner, function)
    else:
        raise ctx.error(
            "a Top-N of rows that are not a windowed aggregate is not supported",
            inner_item,
            supported=TOP_N_SHAPE,
        )
    ranked = windowed.projection
    by_name = {c.name: c for c in ranked}
    middle_alias = middle.parent.alias if isinstance(middle.parent, exp.Subquery) else ""
    inner_alias = inner_item.alias

    def ranked_column(node: exp.Expr, where: str) -> str:
        if not isinstance(node, exp.Column) or (node.table and node.table != inner_alias):
            raise ctx.error(f"{where} takes columns of the ranked query, not {to_sql(node)}", node, supported=TOP_N_SHAPE)
        return _known(ctx, node, list(by_name), where, "the windowed aggregate")

    window_node: exp.Window | None = None
    row_number = ""
    middle_columns: list[str] = []
    for item in middle.expressions:
        value = item.unalias()
        if isinstance(value, exp.Window):
            if window_node is not None:
                raise ctx.error("one ROW_NUMBER() per Top-N", value, supported=TOP_N_SHAPE)
            if not isinstance(item, exp.Alias):
                raise ctx.error(
                    "the ROW_NUMBER() column needs a name, to bound it in WHERE",
                    value,
                    construct="ROW_NUMBER()",
                    supported="ROW_NUMBER() OVER (...) AS row_num",
                )
            window_node, row_number = value, item.alias
            middle_columns.append(row_number)
        elif isinstance(value, exp.Star):
            middle_columns += list(by_name)
        else:
            middle_columns.append(ranked_column(value, "the ranking SELECT"))
            if isinstance(item, exp.Alias) and item.alias != value.name:
                raise ctx.error("renaming a column in the ranking SELECT is not supported", item, supported="rename it in the outer SELECT")
    assert window_node is not None
    partition_by, order_by = _window(ctx, window_node, ranked, ranked_column)
    start, end = _rank_range(ctx, outer, row_number)

    projection: list[OutputColumn] = []
    nodes: list[exp.Expr] = []
    for item in outer.expressions:
        value, alias = (item.this, item.alias) if isinstance(item, exp.Alias) else (item, None)
        if isinstance(value, exp.Star):
            names = middle_columns
        elif isinstance(value, exp.Column) and (not value.table or value.table == middle_alias):
            names = [_known(ctx, value, middle_columns, "SELECT", "the ranking SELECT")]
        else:
            raise ctx.error(
                f"unsupported SELECT item {to_sql(value)} over a Top-N",
                value,
                supported="columns of the ranking SELECT, with an optional AS, or *",
            )
        for name in names:
            if name == row_number:
                column = OutputColumn(row_number, "row_number", row_number, "long")
            else:
                column = by_name[name]
            projection.append(OutputColumn(alias or column.name, column.source, column.ref, column.type))
            nodes.append(item)
    ordered = {k.column for k in order_by}
    top_n = TopNSpec(
        partition_by=partition_by,
        order_by=order_by,
        tie_break=tuple(c.name for c in ranked if c.name not in partition_by and c.name not in ordered),
        rank_start=start,
        rank_end=end,
        row_number=row_number,
        row_number_emitted=any(c.source == "row_number" for c in projection),
        ranked=tuple(ranked),
    )
    return CompiledTopN(windowed, top_n, projection, nodes)


def _known(ctx: QueryContext, node: exp.Column, names: list[str], where: str, what: str) -> str:
    if node.name not in names:
        raise ctx.error(
            f"unknown column `{node.name}` in {where}",
            node,
            construct=node.name,
            supported=f"columns of {what}: {', '.join(names)}",
        )
    return node.name


def _window(
    ctx: QueryContext, node: exp.Window, ranked: list[OutputColumn], ranked_column: Callable[[exp.Expr, str], str]
) -> tuple[tuple[str, ...], tuple[SortKey, ...]]:
    function = node.this
    if not isinstance(function, exp.RowNumber):
        name = function.sql_name() if isinstance(function, exp.Func) else to_sql(function)
        raise ctx.error(
            f"{name}() is not supported in a Top-N (Flink's Window Top-N takes ROW_NUMBER())",
            function,
            construct=name,
            supported="ROW_NUMBER() OVER (PARTITION BY window_start, window_end ... ORDER BY ...)",
        )
    if node.args.get("spec"):
        raise ctx.error("a window frame (ROWS/RANGE) is not supported in a Top-N", node, supported=TOP_N_SHAPE)
    partition = [ranked_column(p, "PARTITION BY") for p in node.args.get("partition_by") or []]
    sources = {c.name: c.source for c in ranked}
    missing = [w for w in ("window_start", "window_end") if w not in {sources[p] for p in partition}]
    if missing:
        raise ctx.error(
            f"a Window Top-N must PARTITION BY window_start, window_end; {' and '.join(missing)} missing",
            node,
            construct="PARTITION BY",
            offset=ctx.keyword_in(node, TokenType.PARTITION_BY) or ctx.keyword_in(node, TokenType.OVER),
            supported="PARTITION BY window_start, window_end[, columns]: without them the ranking never ends",
        )
    order = node.args.get("order")
    if order is None or not order.expressions:
        raise ctx.error(
            "a Top-N needs ORDER BY in its OVER (...)",
            node,
            construct="OVER",
            offset=ctx.keyword_in(node, TokenType.OVER),
            supported="ORDER BY <column> [ASC|DESC]",
        )
    keys = []
    for item in order.expressions:
        column = ranked_column(item.this, "ORDER BY")
        keys.append(SortKey(column, bool(item.args.get("desc")), _explicit_nulls(ctx, item)))
    return tuple(dict.fromkeys(partition)), tuple(keys)


def _explicit_nulls(ctx: QueryContext, item: exp.Ordered) -> bool | None:
    """NULLS FIRST / NULLS LAST when written, None for Flink's default."""
    default = not item.args.get("desc")  # sqlglot's default for the dialect: NULL is the smallest value
    nulls_first = bool(item.args.get("nulls_first"))
    return None if nulls_first == default else nulls_first


_FLIPPED = {exp.LT: exp.GT, exp.LTE: exp.GTE, exp.GT: exp.LT, exp.GTE: exp.LTE, exp.EQ: exp.EQ}


def _rank_range(ctx: QueryContext, outer: exp.Select, row_number: str) -> tuple[int, int]:
    where = outer.args.get("where")
    if where is None:
        raise ctx.error(
            f"a Top-N needs an upper bound on `{row_number}`",
            outer,
            construct="missing WHERE",
            offset=ctx.keyword_in(outer, TokenType.SELECT),
            supported=f"WHERE {row_number} <= N",
        )
    start, end = 1, None

    def bound(node: exp.Expr) -> int:
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            return int(node.this)
        raise ctx.error(f"the bound of `{row_number}` must be a whole number, not {to_sql(node)}", node, supported=RANGE_SHAPE)

    def is_rank(node: exp.Expr) -> bool:
        return isinstance(node, exp.Column) and node.name == row_number

    for part in conjuncts(where.this):
        if isinstance(part, exp.Between) and is_rank(part.this):
            start, end = max(start, bound(part.args["low"])), min(end or 2**62, bound(part.args["high"]))
            continue
        kind = type(part)
        if kind in _FLIPPED and (is_rank(part.this) or is_rank(part.expression)):
            if is_rank(part.this):
                value = bound(part.expression)
            else:
                kind, value = _FLIPPED[kind], bound(part.this)
            upper = {exp.LTE: value, exp.LT: value - 1, exp.EQ: value}.get(kind)
            lower = {exp.GTE: value, exp.GT: value + 1, exp.EQ: value}.get(kind)
            end = upper if upper is not None and (end is None or upper < end) else end
            start = max(start, lower) if lower is not None else start
            continue
        raise ctx.error(
            f"the WHERE of a Top-N takes conditions on `{row_number}` only, not {to_sql(part)}",
            part,
            supported=f"{RANGE_SHAPE}; filter groups with HAVING in the windowed aggregate",
        )
    if end is None:
        raise ctx.error(
            f"a Top-N needs an upper bound on `{row_number}`",
            where.this,
            supported=f"WHERE {row_number} <= N",
        )
    if end < start:
        raise ctx.error(
            f"the condition on `{row_number}` keeps no row ({start} to {end})",
            where.this,
            supported=RANGE_SHAPE,
        )
    return start, end


