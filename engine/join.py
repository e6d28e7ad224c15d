"""A regular stream-stream join (`a JOIN b ON a.k = b.k`) as a pure state
machine, with Flink SQL's semantics; no Bytewax, no I/O.

Rows of both inputs are kept per key. When a row arrives it is paired with
every kept row of the other input that has the same key (and passes the
rest of ON), and then kept itself: so a pair is emitted exactly once, when
the second of its two rows arrives, whichever input that is. Rows come out
in processing order, not event-time order. A row with a NULL key column
never equals anything (SQL's `=`), so it is never kept.

INNER JOIN output is append-only: every row is an insert (`+I`). LEFT JOIN
output is what Flink emits into an upsert sink: a left row without a match
is emitted at once padded with NULLs; when its first match arrives, that
padded row is retracted (`-D`) and the pairs are inserted. The compiler
allows a LEFT JOIN only into an upsert-kafka Stream, as Flink refuses to
write one to an append-only kafka sink; the encoder turns `-D` into a
tombstone for the row's primary key.

State lives until the optional TTL (Flink's `table.exec.state.ttl`, in
processing time) has passed since the row was written, or, for a LEFT
JOIN's left rows, last matched (Flink rewrites them to count their
matches); an expired row is never paired again. The state is plain
picklable data (`JoinState`), for the recovery store.

Input is a batch of rows per input, each a tuple of that input's
`JoinInput.columns` (after its own filter: `engine.join_stage` does both
over a decoded batch); output is the batch of rows made, as tuples of the
plan's SELECT list.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from config.sql.plan import JoinInput, JoinSpec, OutputColumn, Predicate

Change = Literal["+I", "-D"]
INSERT: Change = "+I"
DELETE: Change = "-D"
LEFT, RIGHT = 0, 1
SIDE_NAMES = ("left", "right")


@dataclass
class JoinState:
    """All a join keeps, picklable as is.

    `rows[side][key]` is the key's bucket `[rows, written_ms, matches]`:
    its rows in arrival order, and beside them, only where the join needs
    them, when each was written (with a TTL) and how many pairs each has had
    (a LEFT JOIN's left rows); else None. A row costs its tuple and nothing
    more, which is what a snapshot pickles. `written` lists (written_ms,
    side, key) in write order, so that expiring a TTL is a walk from the
    oldest end.
    """

    rows: tuple[dict[tuple, list[Any]], dict[tuple, list[Any]]] = field(default_factory=lambda: ({}, {}))
    written: deque = field(default_factory=deque)
    kept: list[int] = field(default_factory=lambda: [0, 0])
    counters: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("left_in", "right_in", "inserts_out", "deletes_out", "expired"), 0)
    )


@dataclass
class JoinOutput:
    """The rows one batch made, in order; `kinds[i]` says whether row i is
    an insert or a retraction (None: all inserts, the INNER JOIN case);
    `origins[i]`, when the join keeps them, the origins of its left and
    right rows (None for a null-padded side)."""

    rows: list[tuple] = field(default_factory=list)
    kinds: list[Change] | None = None
    origins: list[tuple[Any, Any]] | None = None

    def changes(self) -> list[tuple[Change, tuple]]:
        kinds = self.kinds if self.kinds is not None else [INSERT] * len(self.rows)
        return list(zip(kinds, self.rows))

    def __len__(self) -> int:
        return len(self.rows)


class StreamJoin:
    """The join of one plan: feed it batches of either input, get the rows it makes."""

    def __init__(self, spec: JoinSpec, projection: Sequence[OutputColumn], state: JoinState | None = None,
                 origins: bool = False):
        """`origins`: each input row ends with one more value, where it came
        from (kept in state, never compared), and the output says whose pair
        each row is (a result's identity)."""
        self.spec = spec
        self.state = state or JoinState()
        self.origins = origins
        self.ttl_ms = spec.state_ttl_ms
        self.outer = spec.kind == "LEFT"
        sides = (spec.left, spec.right)
        self.key_index = (
            tuple(spec.left.index(c) for c in spec.left_keys),
            tuple(spec.right.index(c) for c in spec.right_keys),
        )
        self.pick = tuple((SIDE_NAMES.index(c.source), sides[SIDE_NAMES.index(c.source)].index(c.ref)) for c in projection)
        self.condition = _PairCheck.of(spec.condition, sides)
        self.residual = _PairCheck.of(spec.residual, sides)

    # --- input ------------------------------------------------------------------

    def on_left(self, rows: Sequence[tuple], now_ms: float) -> JoinOutput:
        return self._arrive(LEFT, rows, now_ms)

    def on_right(self, rows: Sequence[tuple], now_ms: float) -> JoinOutput:
        return self._arrive(RIGHT, rows, now_ms)

    def on_tick(self, now_ms: float) -> int:
        """Processing time passed: drop the rows whose TTL is over; returns how many."""
        return self._expire(now_ms)

    # --- state --------------------------------------------------------------------

    @property
    def rows_kept(self) -> int:
        """Rows held in state, both inputs (the state-size metric)."""
        return self.state.kept[LEFT] + self.state.kept[RIGHT]

    def snapshot(self) -> JoinState:
        return self.state

    # --- the state machine ------------------------------------------------------------

    def _arrive(self, side: int, rows: Sequence[tuple], now_ms: float) -> JoinOutput:
        self._expire(now_ms)
        st = self.state
        st.counters[SIDE_NAMES[side] + "_in"] += len(rows)
        out = JoinOutput(kinds=[] if self.outer else None, origins=[] if self.origins else None)
        own, other = st.rows[side], st.rows[1 - side]
        key_index = self.key_index[side]
        ttl = self.ttl_ms
        for row in rows:
            key = tuple(row[i] for i in key_index)
            if None in key:
                if self.outer and side == LEFT:
                    self._emit(out, row, None, INSERT)
                continue
            matches = 0
            bucket = other.get(key)
            if bucket is not None:
                their_rows, their_written, their_matches = bucket
                for j, other_row in enumerate(their_rows):
                    if ttl is not None and their_written[j] + ttl <= now_ms:
                        continue
                    left, right = (row, other_row) if side == LEFT else (other_row, row)
                    if self.condition is not None and not self.condition(left, right):
                        continue
                    matches += 1
                    if side == RIGHT and self.outer:
                        if their_matches[j] == 0:
                            self._emit(out, left, None, DELETE)
                        their_matches[j] += 1
                        if ttl is not None:  # Flink rewrites the row to count its match: its TTL starts again
                            their_written[j] = now_ms
                            st.written.append((now_ms, LEFT, key))
                    self._emit(out, left, right, INSERT)
            if side == LEFT and self.outer and matches == 0:
                self._emit(out, row, None, INSERT)
            mine = own.get(key)
            if mine is None:
                mine = own[key] = [[], [] if ttl is not None else None, [] if self.outer and side == LEFT else None]
            mine[0].append(row)
            if ttl is not None:
                mine[1].append(now_ms)
                st.written.append((now_ms, side, key))
            if mine[2] is not None:
                mine[2].append(matches)
            st.kept[side] += 1
        return out

    def _emit(self, out: JoinOutput, left: tuple, right: tuple | None, kind: Change) -> None:
        if self.residual is not None and not self.residual(left, right):
            return
        rows = (left, right)
        out.rows.append(tuple(None if rows[s] is None else rows[s][i] for s, i in self.pick))  # type: ignore[index]
        if out.kinds is not None:
            out.kinds.append(kind)
        if out.origins is not None:
            out.origins.append((left[-1], None if right is None else right[-1]))
        self.state.counters["inserts_out" if kind == INSERT else "deletes_out"] += 1

    def _expire(self, now_ms: float) -> int:
        ttl = self.ttl_ms
        if ttl is None:
            return 0
        st = self.state
        written = st.written
        dropped = 0
        while written and written[0][0] + ttl <= now_ms:
            _, side, key = written.popleft()
            bucket = st.rows[side].get(key)
            if bucket is None:
                continue
            rows, times, matches = bucket
            live = [j for j, t in enumerate(times) if t + ttl > now_ms]
            gone = len(rows) - len(live)
            if gone:
                dropped += gone
                st.kept[side] -= gone
                if live:
                    st.rows[side][key] = [[rows[j] for j in live], [times[j] for j in live],
                                          None if matches is None else [matches[j] for j in live]]
                else:
                    del st.rows[side][key]
        st.counters["expired"] += dropped
        return dropped


class _PairCheck:
    """A condition over a pair (`left.<col>` / `right.<col>` keys), as a
    callable of the two rows; a missing right row reads as NULLs."""

    def __init__(self, predicate: Predicate, reads: list[tuple[str, int, int]]):
        self.check = predicate.row
        self.reads = reads

    @classmethod
    def of(cls, predicate: Predicate | None, sides: tuple[JoinInput, JoinInput]) -> "_PairCheck | None":
        if predicate is None:
            return None
        reads = []
        for key in predicate.columns:
            side, column = key.split(".", 1)
            index = SIDE_NAMES.index(side)
            reads.append((key, index, sides[index].index(column)))
        return cls(predicate, reads)

    def __call__(self, left: tuple, right: tuple | None) -> bool:
        rows = (left, right)
        values: dict[str, Any] = {}
        for key, side, index in self.reads:
            row = rows[side]
            values[key] = None if row is None else row[index]
        return self.check(values)


def output_dicts(output: JoinOutput, projection: Sequence[OutputColumn]) -> list[tuple[Change, Mapping[str, Any]]]:
    """The changes as (kind, column -> value), for an encoder of output rows."""
    names = [c.name for c in projection]
    return [(kind, dict(zip(names, row))) for kind, row in output.changes()]

