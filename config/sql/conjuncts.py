"""Conditions taken apart and put together: the AND-ed parts of a WHERE or
ON, which a join moves to where they apply, and compiled predicates joined
back with AND."""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any, Callable, Mapping, Sequence

from sqlglot import exp

from config.sql.plan import Predicate

COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Like, exp.In, exp.Escape)


def conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    """`a AND (b AND c)` -> [a, b, c]; parentheses around a whole conjunct are dropped."""
    if node is None:
        return []
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return [*conjuncts(node.this), *conjuncts(node.expression)]
    return [node]


def all_of(predicates: Sequence[Predicate]) -> Predicate | None:
    """The AND of compiled predicates (None for none)."""
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    rows = tuple(p.row for p in predicates)

    def row(values: Mapping[str, Any]) -> bool:
        return all(check(values) for check in rows)

    builders = tuple(p.polars for p in predicates)
    return Predicate(
        sql=" AND ".join(f"({p.sql})" if " OR " in p.sql.upper() else p.sql for p in predicates),
        columns=tuple(dict.fromkeys(c for p in predicates for c in p.columns)),
        row=row,
        polars=lambda: reduce(operator.and_, (build() for build in builders)),
    )


def rejects_nulls(node: exp.Expr, of_side: Callable[[exp.Column], bool]) -> bool:
    """Whether a condition can only hold when the columns `of_side` picks
    are not NULL (Calcite's "strong" test): then a LEFT JOIN's null-padded
    rows never pass it, and Flink plans the join as an INNER JOIN."""
    if isinstance(node, exp.Paren):
        return rejects_nulls(node.this, of_side)
    if isinstance(node, exp.And):
        return rejects_nulls(node.this, of_side) or rejects_nulls(node.expression, of_side)
    if isinstance(node, exp.Or):
        return rejects_nulls(node.this, of_side) and rejects_nulls(node.expression, of_side)
    if isinstance(node, exp.Not):
        inner = node.this
        if isinstance(inner, exp.Is):  # x IS NOT NULL
            return _is_side_column(inner.this, of_side)
        return rejects_nulls(inner, of_side)
    if isinstance(node, exp.Is):
        return False
    if isinstance(node, COMPARISONS):
        operands = [node.this, node.args.get("expression"), *(node.expressions if isinstance(node, exp.In) else [])]
        return any(_is_side_column(o, of_side) for o in operands if o is not None)
    return _is_side_column(node, of_side)


def _is_side_column(node: exp.Expr, of_side: Callable[[exp.Column], bool]) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, (exp.Like, exp.Escape)):
        return rejects_nulls(node, of_side)
    return isinstance(node, exp.Column) and of_side(node)


def columns_in(node: exp.Expr) -> list[exp.Column]:
    return [c for c in node.find_all(exp.Column) if not isinstance(c.this, exp.Star)]
