"""A regular stream-stream join: `SELECT ... FROM a [AS x] [INNER | LEFT [OUTER]]
JOIN b [AS y] ON x.k = y.k [AND ...] [WHERE ...]`.

The conditions go where Flink's optimizer puts them, so each runs as early
as it can without changing the result: a condition on one input alone runs
on that input's rows before the join (for a LEFT JOIN only on the right
input when it is in ON, and only on the left when it is in WHERE); the
equalities between the inputs are the join keys; the rest is checked on
each pair (ON) or on each joined row (WHERE). A WHERE that no null-padded
row can pass makes a LEFT JOIN an INNER one, as in Flink.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.tokens import TokenType

from config.pipeline import QueryProcessor, SchemaField
from config.sql.conjuncts import all_of, columns_in, conjuncts, rejects_nulls
from config.sql.context import QueryContext, type_name
from config.sql.parser import to_sql
from config.sql.plan import JoinInput, JoinKind, JoinSpec, OutputColumn, Predicate
from config.sql.predicate import ANY_TYPE, compile_predicate, kind_of
from config.sql.relations import Relation, Scope, relation_of

JOIN_SHAPE = "a [INNER] JOIN b ON a.k = b.k [AND ...], or a LEFT [OUTER] JOIN b ON a.k = b.k"
SIDES = ("left", "right")


@dataclass
class CompiledJoin:
    join: JoinSpec
    projection: list[OutputColumn]
    nodes: list[exp.Expr]
    streams: tuple[str, str]


def compile_join(ctx: QueryContext, select: exp.Select, processor: QueryProcessor | None) -> CompiledJoin:
    joins = select.args["joins"]
    if len(joins) > 1:
        raise ctx.error(
            "one join per query is supported",
            joins[1].this,
            construct="JOIN",
            offset=ctx.keyword_before(joins[1].this, TokenType.JOIN),
            supported="join two streams into an intermediate Stream, and join that in another query",
        )
    join = joins[0]
    kind = _kind_of(ctx, join)
    left = relation_of(ctx, select.args["from_"].this)
    right = relation_of(ctx, join.this)
    scope = Scope(ctx, [left, right], "the join")
    on = join.args.get("on")
    where = select.args.get("where")
    ctx.refuse_subqueries([on, where.this if where else None, *select.expressions], "a join")

    def side_of(column: exp.Column) -> int:
        return scope.resolve(column)[0]

    where_parts = conjuncts(where.this if where else None)
    note = None
    if kind == "LEFT" and any(rejects_nulls(part, lambda c: side_of(c) == 1) for part in where_parts):
        kind = "INNER"
        note = "written LEFT JOIN; its WHERE drops the null-padded rows, so it runs as an INNER JOIN, as in Flink"

    keys: list[tuple[str, str]] = []
    key_nodes: list[exp.Expr] = []
    side_filters: list[list[exp.Expr]] = [[], []]
    pair_conditions: list[exp.Expr] = []
    for part in conjuncts(on):
        pair = _key_pair(ctx, scope, part)
        if pair is not None:
            keys.append(pair)
            key_nodes.append(part)
            continue
        sides = {side_of(c) for c in columns_in(part)}
        if sides == {1} or (kind == "INNER" and sides == {0}):
            side_filters[sides.pop()].append(part)
        else:
            pair_conditions.append(part)
    if not keys:
        raise ctx.error(
            "a join needs at least one equality between a column of each input in ON",
            on if on is not None else join.this,
            construct="ON",
            offset=ctx.keyword_in(select, TokenType.ON) if on is not None else None,
            supported=JOIN_SHAPE,
        )
    residual_parts: list[exp.Expr] = []
    for part in where_parts:
        sides = {side_of(c) for c in columns_in(part)}
        if sides == {0} or (kind == "INNER" and sides == {1}):
            side_filters[sides.pop()].append(part)
        else:
            residual_parts.append(part)

    projection, nodes = _projection(ctx, scope, select)
    used: list[set[str]] = [set(), set()]
    for column in projection:
        used[SIDES.index(column.source)].add(column.ref)
    for a, b in keys:
        used[0].add(a)
        used[1].add(b)
    pair_resolver = _pair_resolver(scope)
    condition = _compile_all(ctx, pair_conditions, pair_resolver, scope)
    residual = _compile_all(ctx, residual_parts, pair_resolver, scope)
    for predicate in (condition, residual):
        for key in predicate.columns if predicate else ():
            side, column = key.split(".", 1)
            used[SIDES.index(side)].add(column)

    inputs = []
    for index, relation in enumerate((left, right)):
        predicates = [_compile_side(ctx, relation, node) for node in relation.filters]
        predicates += [_compile_all(ctx, [part], _side_resolver(scope, index), scope) for part in side_filters[index]]
        kept = tuple(f.name for f in relation.stream.fields if f.name in used[index])
        kept += tuple(sorted(used[index] - set(kept)))  # registry columns not known yet
        _refuse_proctime(ctx, relation, kept, select)
        inputs.append(
            JoinInput(
                stream=relation.stream.name,
                name=relation.name,
                predicate=all_of([p for p in predicates if p is not None]),
                columns=kept,
            )
        )
    spec = JoinSpec(
        kind=kind,
        left=inputs[0],
        right=inputs[1],
        keys=tuple(keys),
        condition=condition,
        residual=residual,
        state_ttl_ms=processor.state_ttl_ms if processor else None,
        note=note,
    )
    return CompiledJoin(spec, projection, nodes, (left.stream.name, right.stream.name))


def _kind_of(ctx: QueryContext, join: exp.Join) -> JoinKind:
    side = (join.args.get("side") or "").upper()
    kind = (join.args.get("kind") or "").upper()
    position = ctx.keyword_before(join.this, TokenType.JOIN)
    if join.args.get("method"):
        raise ctx.error(
            f"{join.args['method'].upper()} JOIN is not supported",
            join.this,
            construct=f"{join.args['method'].upper()} JOIN",
            offset=position,
            supported=JOIN_SHAPE,
        )
    if join.args.get("using"):
        raise ctx.error("JOIN ... USING is not supported", join.this, construct="USING", supported=JOIN_SHAPE)
    if side in ("RIGHT", "FULL"):
        instead = "swap the two inputs and write LEFT JOIN" if side == "RIGHT" else JOIN_SHAPE
        raise ctx.error(f"{side} JOIN is not supported", join.this, construct=f"{side} JOIN", offset=position, supported=instead)
    if kind == "CROSS" or join.args.get("on") is None:
        what = "CROSS JOIN" if kind == "CROSS" else "a join without ON (a comma join)"
        raise ctx.error(
            f"{what} is not supported",
            join.this,
            construct=what,
            offset=position if kind == "CROSS" else None,
            supported=JOIN_SHAPE,
        )
    if kind not in ("", "INNER", "OUTER"):
        raise ctx.error(f"{kind} JOIN is not supported", join.this, construct=f"{kind} JOIN", offset=position, supported=JOIN_SHAPE)
    return "LEFT" if side == "LEFT" else "INNER"


def _key_pair(ctx: QueryContext, scope: Scope, part: exp.Expr) -> tuple[str, str] | None:
    """`x.k = y.k` between the two inputs, as (left column, right column)."""
    if not isinstance(part, exp.EQ) or not all(isinstance(o, exp.Column) for o in (part.this, part.expression)):
        return None
    first, second = scope.resolve(part.this), scope.resolve(part.expression)
    if {first[0], second[0]} != {0, 1}:
        return None
    (_, left_name, left_field), (_, right_name, right_field) = (first, second) if first[0] == 0 else (second, first)
    kinds = {kind_of(left_field), kind_of(right_field)} - {"any"}
    if len(kinds) > 1:
        raise ctx.error(
            f"cannot join {type_name(left_field)} `{left_name}` with {type_name(right_field)} `{right_name}`",
            part,
            supported="join keys of the same kind (string with string, number with number)",
        )
    left, right = scope.relations
    return left.origin.get(left_name, left_name), right.origin.get(right_name, right_name)


def _side_resolver(scope: Scope, index: int):
    """Columns of one input, by the stream's own column names (for the
    conditions that run on that input's rows)."""

    def resolve(column: exp.Column) -> tuple[str, SchemaField]:
        side, name, found = scope.resolve(column)
        assert side == index
        return scope.relations[index].origin.get(name, name), found

    return resolve


def _pair_resolver(scope: Scope):
    """Columns of either input as `left.<column>` / `right.<column>` (for the
    conditions on a pair or a joined row)."""

    def resolve(column: exp.Column) -> tuple[str, SchemaField]:
        side, name, found = scope.resolve(column)
        return f"{SIDES[side]}.{scope.relations[side].origin.get(name, name)}", found

    return resolve


def _compile_all(ctx: QueryContext, parts: list[exp.Expr], resolve, scope: Scope) -> Predicate | None:
    if not parts:
        return None
    node = parts[0] if len(parts) == 1 else exp.and_(*(p.copy() for p in parts))
    relations = " and ".join(r.name for r in scope.relations)
    return compile_predicate(node, {}, ctx.query, relations, resolve=resolve, sql=" AND ".join(to_sql(p) for p in parts))


def _compile_side(ctx: QueryContext, relation: Relation, node: exp.Expr) -> Predicate:
    """A filtered subquery's own WHERE, over its stream's columns."""
    assert relation.inner is not None
    inner = relation.inner

    def resolve(column: exp.Column) -> tuple[str, SchemaField]:
        _, name, found = inner.resolve(column, "WHERE")
        return inner.relations[0].origin.get(name, name), found

    return compile_predicate(node, {}, ctx.query, relation.stream.name, resolve=resolve)


def _projection(ctx: QueryContext, scope: Scope, select: exp.Select) -> tuple[list[OutputColumn], list[exp.Expr]]:
    """The SELECT list of a join: columns of either input (qualified, or bare
    when only one has it), `*` or `<table>.*`."""
    projection: list[OutputColumn] = []
    nodes: list[exp.Expr] = []
    names: set[str] = set()

    def add(side: int, visible: str, found: SchemaField, alias: str | None, node: exp.Expr, star: bool) -> None:
        relation = scope.relations[side]
        name = alias or visible
        if name in names:
            if not star:
                raise ctx.error(f"duplicate output column `{name}`", node, construct=name, supported="distinct names (use AS)")
            suffix = 0
            while f"{name}{suffix}" in names:  # Flink names the second `user_id` of a SELECT * `user_id0`
                suffix += 1
            name = f"{name}{suffix}"
        names.add(name)
        column_type = ANY_TYPE if found.type == ANY_TYPE else type_name(found)
        projection.append(OutputColumn(name, SIDES[side], relation.origin.get(visible, visible), column_type))  # type: ignore[arg-type]
        nodes.append(node)

    for item in select.expressions:
        value, alias = (item.this, item.alias) if isinstance(item, exp.Alias) else (item, None)
        if isinstance(value, exp.Star) or (isinstance(value, exp.Column) and isinstance(value.this, exp.Star)):
            table = value.table if isinstance(value, exp.Column) else None
            sides = [i for i, r in enumerate(scope.relations) if table is None or table in r.qualifiers]
            if not sides:
                raise ctx.error(f"unknown table `{table}` in {to_sql(value)}", value, construct=table)
            for side in sides:
                relation = scope.relations[side]
                if relation.stream.schema_pending:
                    raise ctx.error(
                        f"SELECT * over `{relation.name}` needs its columns, which come from the schema registry at start",
                        item,
                        construct="*",
                        supported="the columns listed by name",
                    )
                for visible, found in relation.columns.items():
                    add(side, visible, found, None, item, True)
        elif isinstance(value, exp.Column):
            side, visible, found = scope.resolve(value, "SELECT")
            add(side, visible, found, alias, item, False)
        elif isinstance(value, tuple(_AGGREGATE_TYPES)):
            raise ctx.error(
                f"{to_sql(value)} over a join needs a window",
                value,
                supported="write the join to an intermediate Stream and aggregate that Stream in a windowed query",
            )
        else:
            raise ctx.error(
                f"unsupported SELECT item {to_sql(value)} in a join",
                value,
                supported="columns of either input, with an optional AS, or *",
            )
    return projection, nodes


def _refuse_proctime(ctx: QueryContext, relation: Relation, kept: tuple[str, ...], select: exp.Select) -> None:
    for name in kept:
        found = relation.stream.field_named(name)
        if found is not None and found.proctime:
            raise ctx.error(
                f"the processing-time attribute `{name}` of `{relation.name}` cannot be used in a join",
                select,
                construct=name,
                offset=next((c.meta.get("start") for c in select.find_all(exp.Identifier) if c.name == name and c.meta), None),
                supported="the other columns of the input",
            )


_AGGREGATE_TYPES = (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg)
