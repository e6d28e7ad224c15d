"""What happens to a fired window's results before they are emitted: HAVING
(over a window's groups at once, before they are made into results) and
Window Top-N (over the `WindowResult`s of one firing).

Both run once per window, on its final values, so their output is final
too: a group that fails HAVING is never emitted (its records were still
counted), and a Top-N emits the first N rows of each partition once.

Top-N order: the ORDER BY columns (NULL is the smallest value unless NULLS
FIRST/LAST says otherwise, as in Flink), then, where Flink would pick any,
the other ranked columns ascending, then the group key; so the same input
always gives the same rows. The results keep the engine's emission order
(window_end, window_start, group key).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import polars as pl

from config.sql.plan import OutputColumn, Plan, SortKey, TopNSpec
from engine.records import WindowResult

PostFire = Callable[[list[WindowResult]], list[WindowResult]]
HavingFilter = Callable[[tuple[int, int], Sequence[tuple], Sequence[dict[str, Any]]], list[bool]]


def post_fire(plan: Plan) -> PostFire | None:
    """What a plan does with each firing's results, HAVING applied (None: nothing): Window Top-N."""
    if plan.top_n is None:
        return None
    spec = plan.top_n
    return lambda results: top_n(plan, spec, results)


def having_filter(plan: Plan) -> HavingFilter | None:
    """HAVING over one fired window's groups at once (None: no HAVING).

    The filter is given the window, the group keys and their final
    aggregates, and says which groups pass, evaluated by polars over the
    whole window (a window may hold a million groups, most of which fail):
    the groups that fail are never made into results."""
    if plan.having is None:
        return None
    predicate = plan.having
    expression = predicate.polars().fill_null(False)
    group_index = {name: i for i, name in enumerate(plan.group_by)}

    def passing(window: tuple[int, int], keys: Sequence[tuple], values: Sequence[dict[str, Any]]) -> list[bool]:
        columns: dict[str, Any] = {}
        for name in predicate.columns:
            if name == "window_start" or name == "window_end":
                columns[name] = pl.repeat(window[0] if name == "window_start" else window[1], len(keys), dtype=pl.Int64, eager=True)
            elif name in group_index:
                i = group_index[name]
                columns[name] = [key[i] for key in keys]
            else:
                columns[name] = [v[name] for v in values]
        frame = pl.DataFrame(columns, strict=False) if columns else pl.DataFrame({"__n": [0] * len(keys)})
        return frame.select(expression.alias("__pass")).to_series().to_list()

    return passing


def ranked_values(columns: Sequence[OutputColumn], plan: Plan, result: WindowResult) -> dict[str, Any]:
    """A result as the ranked SELECT list names its columns."""
    group = dict(zip(plan.group_by, result.key))
    values: dict[str, Any] = {}
    for column in columns:
        if column.source == "window_start":
            values[column.name] = result.start_ms
        elif column.source == "window_end":
            values[column.name] = result.end_ms
        elif column.source == "aggregate":
            values[column.name] = result.aggregates[column.ref]
        else:
            values[column.name] = group.get(column.ref)
    return values


def top_n(plan: Plan, spec: TopNSpec, results: list[WindowResult]) -> list[WindowResult]:
    """Rows `rank_start`..`rank_end` of each partition, by the spec's order."""
    partitions: dict[tuple, list[tuple[dict[str, Any], int]]] = {}
    for position, result in enumerate(results):
        values = ranked_values(spec.ranked, plan, result)
        partition = tuple(values[c] for c in spec.partition_by)
        partitions.setdefault(partition, []).append((values, position))
    ranks: dict[int, int] = {}
    for members in partitions.values():
        for rank, (_, position) in enumerate(_ordered(members, spec, results), 1):
            if rank > spec.rank_end:
                break
            if rank >= spec.rank_start:
                ranks[position] = rank
    kept = []
    for position, result in enumerate(results):
        rank = ranks.get(position)
        if rank is None:
            continue
        if spec.row_number_emitted:
            result = WindowResult(result.start_ms, result.end_ms, result.key, {**result.aggregates, spec.row_number: rank})
        kept.append(result)
    return kept


def _ordered(
    members: list[tuple[dict[str, Any], int]], spec: TopNSpec, results: list[WindowResult]
) -> list[tuple[dict[str, Any], int]]:
    """Stable sorts from the least significant key up: the group key, the
    tie-break columns ascending, then the ORDER BY columns."""
    rows = sorted(members, key=lambda m: group_order(results[m[1]].key))
    for column in reversed(spec.tie_break):
        rows.sort(key=_sort_key(SortKey(column)))
    for order in reversed(spec.order_by):
        rows.sort(key=_sort_key(order), reverse=order.descending)
    return rows


def _sort_key(order: SortKey) -> Callable[[tuple[dict[str, Any], int]], tuple]:
    """A key under which NULL sorts where the order says, without comparing
    NULL to a value: (0,) and (2,) bracket every (1, value)."""
    column = order.column
    # With reverse=True the largest key comes first, so NULLS FIRST takes the largest marker.
    first = order.nulls_come_first
    null = (2,) if first == order.descending else (0,)

    def key(member: tuple[dict[str, Any], int]) -> tuple:
        value = member[0][column]
        return null if value is None else (1, value)

    return key


def group_order(key: tuple) -> tuple:
    """How group keys sort (NULLs last), for the engine's emission order and Top-N's last tie-break."""
    return tuple((value is None, value) for value in key)
