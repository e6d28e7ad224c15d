"""The global half of the event-time engine: watermarks across partitions,
window firing, lateness, and the merge of partial aggregates.

It follows the event-time contract (docs/semantics.md) exactly and is pure: batches and processing times
in, results and late records out, so the rules are tested by the thousand
without a broker. The Bytewax operator around it is `operators.windows`.

Lateness of a row read from partition p, in window [start, end): the window
had fired when the row was read, i.e. end - 1 <= F, where F is the highest
global watermark so far. Inside one batch of p, the global watermark before
row i is max(F_start, min(L_i, W_others)) with L_i the partition's own
watermark before the row (non-decreasing) and W_others the minimum over the
other non-idle partitions, constant during the batch. So the late rows of a
group are none, all, or a suffix found by bisection: no per-row work here.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from config.pipeline import EngineSettings
from config.sql.plan import Plan
from engine.aggregates import Accumulator
from engine.having_topn import group_order as _sort_key, having_filter, post_fire
from engine.records import END_OF_TIME, NO_WATERMARK, Fired, LateRecord, PartitionBatch, PartitionId, WindowResult

STALL_FLOOR_MS = 1_000.0
"""A partition not heard from for this long (or the idle timeout, if longer)
is stalled, not idle; so is the engine when it was not called for as long."""


@dataclass
class PartitionClock:
    """What the engine knows of one input partition. Times are processing time (ms)."""

    watermark_ms: int = NO_WATERMARK
    last_arrival_ms: float = 0.0  # the last batch that held records
    last_heard_ms: float = float("-inf")  # the last batch of any size (readers send an empty one every tick)
    caught_up: bool = False  # the reader had reached the end of the partition's log at its last batch
    finished: bool = False  # a bounded input's partition that has been read to its end


@dataclass
class EngineState:
    """Everything that must survive a restart (pickled into the recovery store)."""

    partitions: dict[PartitionId, PartitionClock] = field(default_factory=dict)
    fired_ms: int = NO_WATERMARK  # F: the highest global watermark so far
    max_event_ms: int | None = None
    max_event_arrival_ms: float = 0.0
    open_windows: dict[tuple[int, int], dict[tuple, Accumulator]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("records_in", "filtered", "counted", "late", "dead_lettered", "results_out"), 0))
    started_ms: float | None = None
    last_call_ms: float | None = None  # processing time of the engine's last step: a gap is a stall (or downtime)


class WindowEngine:
    """Merges partition batches, fires windows, judges lateness."""

    def __init__(self, plan: Plan, settings: EngineSettings, delay_ms: int, state: EngineState | None = None):
        self.plan = plan
        self.aggregates = plan.aggregates
        self.settings = settings
        self.delay_ms = delay_ms
        self.state = state or EngineState()
        timeout = settings.idle_timeout_ms
        self.stall_ms = max(STALL_FLOOR_MS, float(timeout or 0))
        self.having = having_filter(plan)  # on each fired window's groups, before they are made into results
        self.post_fire = post_fire(plan)  # Window Top-N: on each firing's final results

    # --- processing time -----------------------------------------------------

    def _resume(self, now_ms: float) -> None:
        """Processing time stands still while the engine does not run.

        A gap since the engine's last step (a restart after any downtime, a
        worker blocked by a sink waiting for its broker, a paused process) is
        taken out of every processing-time clock, so that idleness and the
        quiet-input advance judge the input as if the gap had not happened:
        the records that arrive after it are the ones that were waiting."""
        st = self.state
        if st.last_call_ms is not None:
            gap = now_ms - st.last_call_ms
            if gap > self.stall_ms:
                for clock in st.partitions.values():
                    clock.last_arrival_ms += gap
                    clock.last_heard_ms += gap
                st.max_event_arrival_ms += gap
                if st.started_ms is not None:
                    st.started_ms += gap
        st.last_call_ms = now_ms

    def _idle(self, clock: PartitionClock, now_ms: float) -> bool:
        """Idle: caught up with its log, still heard from, and no record for the idle timeout.

        A partition that has a backlog, or that its reader cannot read (a
        broker or registry outage, a stalled worker: no batch for a while),
        holds the watermark back however long it is quiet."""
        if clock.finished:  # read to its end: it holds nobody back (Flink: a finished split's watermark is +inf)
            return True
        timeout = self.settings.idle_timeout_ms
        if not timeout:  # 0 or None: idleness detection is off (Flink's default)
            return False
        return (
            clock.caught_up
            and now_ms - clock.last_heard_ms <= self.stall_ms
            and now_ms - clock.last_arrival_ms > timeout
        )

    def _know(self, partitions: tuple[PartitionId, ...], now_ms: float) -> None:
        """Partitions not heard from yet count as active from the engine's start."""
        st = self.state
        if st.started_ms is None:
            st.started_ms = now_ms
        for name in partitions:
            if name not in st.partitions:
                st.partitions[name] = PartitionClock(last_arrival_ms=st.started_ms)

    def watermark(self, now_ms: float) -> int:
        """W: the minimum over non-idle partitions, or the quiet-input advance."""
        st = self.state
        active = [c.watermark_ms for c in st.partitions.values() if not self._idle(c, now_ms)]
        if active:
            return min(active)
        if self.settings.quiet_advance and st.max_event_ms is not None:
            return int(st.max_event_ms - self.delay_ms + (now_ms - st.max_event_arrival_ms))
        return NO_WATERMARK

    # --- input ---------------------------------------------------------------

    def on_batch(self, batch: PartitionBatch, now_ms: float) -> Fired:
        st = self.state
        self._resume(now_ms)
        self._know(batch.partitions, now_ms)
        clock = st.partitions.setdefault(batch.source, PartitionClock(last_arrival_ms=now_ms))
        clock.last_heard_ms = now_ms
        clock.caught_up = batch.caught_up
        clock.finished = clock.finished or batch.end_of_input
        if batch.records_in:
            clock.last_arrival_ms = now_ms
        others = [c.watermark_ms for name, c in st.partitions.items() if name != batch.source and not self._idle(c, now_ms)]
        w_others = min(others) if others else END_OF_TIME
        fired = st.fired_ms

        late: list[LateRecord] = []
        topic, partition = batch.source
        for (start, end, key), rows in batch.groups.items():
            limit = end - 1
            if limit <= fired:
                split = 0
            elif limit <= w_others:
                split = bisect_left(rows.local_watermarks, limit)
            else:
                split = len(rows.local_watermarks)
            if split:
                window = st.open_windows.setdefault((start, end), {})
                acc = window.get(key)
                if acc is None:
                    acc = window[key] = Accumulator(self.aggregates)
                acc.fold(self.aggregates, rows.values, 0, split)
            for pos, offset in rows.late_after(split):
                seen = max(fired, min(rows.local_watermarks[pos], w_others))
                late.append(LateRecord(topic, partition, offset, start, end, seen, batch.record_at(offset)))

        passing = batch.records_in - batch.filtered - batch.dead_lettered
        counters = st.counters
        counters["records_in"] += batch.records_in
        counters["filtered"] += batch.filtered
        counters["dead_lettered"] += batch.dead_lettered
        counters["late"] += len(late)
        counters["counted"] += passing - len(late)

        if batch.watermark_ms is not None and batch.watermark_ms > clock.watermark_ms:
            clock.watermark_ms = batch.watermark_ms
        if batch.max_event_ms is not None and (st.max_event_ms is None or batch.max_event_ms > st.max_event_ms):
            st.max_event_ms = batch.max_event_ms
            st.max_event_arrival_ms = now_ms
        return Fired(self._advance(now_ms), late)

    def on_tick(self, now_ms: float) -> Fired:
        """Processing time passed: idle partitions and quiet input may fire windows."""
        if self.state.started_ms is None:
            return Fired()
        self._resume(now_ms)
        return Fired(self._advance(now_ms))

    def on_end(self) -> Fired:
        """Bounded input is exhausted: W jumps to +infinity, every window fires.

        What is kept for a later run on the same recovery store is the end of
        the last window that fired, not infinity: records of those windows
        are late then, and newer windows open as usual."""
        st = self.state
        before = st.fired_ms
        last = max((end - 1 for _, end in st.open_windows), default=before)
        fired = self._fire(END_OF_TIME)
        st.fired_ms = max(before, last)
        return Fired(fired)

    # --- output --------------------------------------------------------------

    def _advance(self, now_ms: float) -> list[WindowResult]:
        w = self.watermark(now_ms)
        if w > self.state.fired_ms:
            return self._fire(w)
        return []

    def _fire(self, watermark: int) -> list[WindowResult]:
        st = self.state
        st.fired_ms = max(st.fired_ms, watermark)
        due = sorted((w for w in st.open_windows if w[1] - 1 <= st.fired_ms), key=lambda w: (w[1], w[0]))
        results: list[WindowResult] = []
        fired = 0
        for window in due:
            groups = st.open_windows.pop(window)
            keys = list(groups)
            values = [groups[key].result(self.aggregates) for key in keys]
            fired += len(keys)
            if self.having is not None and keys:
                passing = self.having(window, keys, values)
                keys = [k for k, ok in zip(keys, passing) if ok]
                values = [v for v, ok in zip(values, passing) if ok]
            for i in sorted(range(len(keys)), key=lambda i: _sort_key(keys[i])):
                results.append(WindowResult(window[0], window[1], keys[i], values[i]))
        if self.post_fire is not None and results:
            results = self.post_fire(results)
        if fired != len(results):  # groups HAVING or Top-N leave out: their records stay counted
            st.counters["results_suppressed"] = st.counters.get("results_suppressed", 0) + fired - len(results)
        st.counters["results_out"] += len(results)
        return results

    @property
    def open_window_count(self) -> int:
        return len(self.state.open_windows)

    def snapshot(self) -> EngineState:
        return self.state


def result_row(plan: Plan, result: WindowResult) -> dict[str, Any]:
    """The SELECT list of a fired window, in order, as column -> value."""
    group = dict(zip(plan.group_by, result.key))
    row: dict[str, Any] = {}
    for column in plan.projection:
        if column.source == "window_start":
            row[column.name] = result.start_ms
        elif column.source == "window_end":
            row[column.name] = result.end_ms
        elif column.source == "group":
            row[column.name] = group[column.ref]
        elif column.source in ("aggregate", "row_number"):
            row[column.name] = result.aggregates[column.ref]
        else:
            row[column.name] = group.get(column.ref)
    return row
