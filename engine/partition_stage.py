"""The per-partition half of the event-time engine (local aggregation).

One `PartitionStage` runs beside each input partition's reader: it decodes a
whole batch, dead-letters what cannot be used, applies the query's filter,
tracks the partition's watermark W_p, assigns windows and groups the rows by
(window, group key). The global half (`engine.window_engine`) only merges
these groups, so no per-event Python call crosses the dataflow.

The watermark rule (docs/semantics.md): W_p = (largest event time read so far) -
delay, never decreasing, updated after each record, so a record is judged
against the W_p in force before it. `local_watermarks` keeps that value per
row; within a batch it is a running maximum (a vectorised cumulative max).

Rows carry their Kafka offset, not their bytes: the few that turn out late
are read back by offset (`connectors.late_fetch`), so the common case builds
no per-record Python object at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import polars as pl

from config.pipeline import EngineSettings, StreamSpec
from config.sql.plan import Plan
from engine.dead_letters import dead_letter
from engine.metadata import MetadataColumns
from engine.records import NO_WATERMARK, GroupRows, PartitionBatch, PartitionId, RecordBatch, WindowedOutput
from engine.serde import event_time_divisor

# Event times a TIMESTAMP(3) can hold, as Flink defines it: 0000-01-01 00:00:00.000
# to 9999-12-31 23:59:59.999 UTC, in epoch milliseconds. Outside it a record is a
# dead letter: window bounds and watermarks then never leave 64 bits.
MIN_EVENT_MS = -62_167_219_200_000
MAX_EVENT_MS = 253_402_300_799_999


def offsets_of(batch: RecordBatch, positions: Sequence[int]) -> pl.Series:
    """The Kafka offsets of the records at `positions` of a read."""
    offsets = batch.offsets
    if offsets is None:
        return pl.Series("__offset", positions, dtype=pl.Int64) + batch.first_offset
    return pl.Series("__offset", [offsets[i] for i in positions], dtype=pl.Int64)


@dataclass
class _Rows:
    """The kept rows of a batch as a frame with the engine's helper columns."""

    frame: pl.DataFrame  # decoded columns + __ts, __offset, __lw
    rejected: list[tuple[int, str]] = field(default_factory=list)


class PartitionStage:
    """Decode, dead-letter, filter, watermark and group one partition's batches."""

    def __init__(
        self,
        plan: Plan,
        stream: StreamSpec,
        settings: EngineSettings,
        decoder: Any,
        source: PartitionId,
        partitions: tuple[PartitionId, ...],
        dlq_topic: str,
        state: tuple[int, int | None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        assert plan.window is not None, "the stateless form does not need a partition stage"
        self.plan = plan
        self.window = plan.window
        self.settings = settings
        self.decoder = decoder
        self.source = source
        self.partitions = partitions
        self.dlq_topic = dlq_topic
        self.clock = clock
        time_attr = stream.time_attribute
        assert time_attr is not None
        self.time_column = time_attr.column
        self.time_divisor = event_time_divisor(stream)  # the column's unit (micros, say) to epoch millis
        self.time_origin = {"kafka-timestamp": " (the Kafka record timestamp)",
                            "header": f" (the Kafka header {time_attr.header!r})"}.get(time_attr.source, "")
        # Kafka metadata and processing-time columns the plan reads, event time included
        self.metadata = MetadataColumns.of(stream, plan.columns_needed, clock)
        self.delay = time_attr.watermark_delay_ms
        self.value_columns = tuple(dict.fromkeys(a.column for a in plan.aggregates if a.column))
        self.predicate = plan.predicate.polars().fill_null(False) if plan.predicate else None
        # W_p and the largest event time seen, restored from the recovery store
        self.max_event_ms: int | None = state[1] if state else None
        self.watermark_ms: int = state[0] if state else NO_WATERMARK

    def snapshot(self) -> tuple[int, int | None]:
        return (self.watermark_ms, self.max_event_ms)

    def process(self, batch: RecordBatch, end_of_input: bool = False, caught_up: bool = False) -> WindowedOutput:
        """One read in, the grouped rows and the dead letters out."""
        decoded = self.decoder.decode(batch.values)
        rows = self._kept_rows(decoded, batch)
        rows.rejected.sort()
        dead = [dead_letter(batch.record(i), reason, self.dlq_topic) for i, reason in rows.rejected]
        kept = rows.frame
        if kept.height:
            largest = int(kept["__ts"].max())  # type: ignore[arg-type]
            self.max_event_ms = largest if self.max_event_ms is None else max(self.max_event_ms, largest)
            self.watermark_ms = max(self.watermark_ms, largest - self.delay)
        passing = kept.filter(self.predicate) if self.predicate is not None and kept.height else kept
        groups = self._group(passing)
        return WindowedOutput(
            PartitionBatch(
                source=self.source,
                partitions=self.partitions,
                records_in=len(batch),
                filtered=kept.height - passing.height,
                dead_lettered=len(dead),
                watermark_ms=None if self.watermark_ms == NO_WATERMARK else self.watermark_ms,
                max_event_ms=self.max_event_ms,
                groups=groups,
                end_of_input=end_of_input,
                caught_up=caught_up,
            ),
            dead,
        )

    def _kept_rows(self, decoded: Any, batch: RecordBatch) -> _Rows:
        """Decoded rows minus those stamped outside years 0000..9999 or in the
        future, with event time, offset and the watermark before each row."""
        rejected = list(decoded.errors)
        index = decoded.index
        frame, unreadable = self.metadata.add(decoded.frame, batch, index, self.source)
        event_times = frame.get_column(self.time_column).cast(pl.Int64).alias("__ts")
        if self.time_divisor != 1:
            event_times = event_times // self.time_divisor
        frame = frame.with_columns(event_times, offsets_of(batch, index), pl.Series("__pos", index, dtype=pl.Int64))
        if unreadable:
            rejected += unreadable
            frame = frame.filter(~pl.col("__pos").is_in([pos for pos, _ in unreadable]))
        if self.metadata and frame.get_column("__ts").null_count():
            missing = frame.filter(pl.col("__ts").is_null())
            rejected += [(pos, f"missing-field: {self.time_column}{self.time_origin}") for pos in missing["__pos"].to_list()]
            frame = frame.filter(pl.col("__ts").is_not_null())
        stamps = frame.get_column("__ts")
        if frame.height and not (MIN_EVENT_MS <= stamps.min() and stamps.max() <= MAX_EVENT_MS):  # type: ignore[operator]
            in_range = pl.col("__ts").is_between(MIN_EVENT_MS, MAX_EVENT_MS)
            outside = frame.filter(~in_range)
            rejected += [(pos, f"timestamp-out-of-range: {ts} is not an epoch-millisecond time in years 0000..9999")
                         for pos, ts in zip(outside["__pos"].to_list(), outside["__ts"].to_list())]
            frame = frame.filter(in_range)
        skew = self.settings.max_future_skew_ms
        if skew is not None and frame.height:
            limit = int(self.clock() * 1000) + skew
            future = frame.filter(pl.col("__ts") > limit)
            if future.height:
                rejected += [(pos, f"future-timestamp: {ts} is more than {skew} ms ahead of now")
                             for pos, ts in zip(future["__pos"].to_list(), future["__ts"].to_list())]
                frame = frame.filter(pl.col("__ts") <= limit)
        before = (pl.col("__ts") - self.delay).cum_max().shift(1).fill_null(self.watermark_ms)
        frame = frame.with_columns(pl.max_horizontal(before, pl.lit(self.watermark_ms, dtype=pl.Int64)).alias("__lw"))
        return _Rows(frame, rejected)

    def _group(self, passing: pl.DataFrame) -> dict[tuple[int, int, tuple], GroupRows]:
        if not passing.height:
            return {}
        if self.window.kind == "TUMBLE":
            return self._group_tumbling(passing)
        return self._group_each(passing)

    def _group_tumbling(self, passing: pl.DataFrame) -> dict[tuple[int, int, tuple], GroupRows]:
        """One window per row: a vectorised group-by, Python work per group only."""
        size = self.window.size_ms
        keys = list(self.plan.group_by)
        grouped = (
            passing.with_columns(((pl.col("__ts") // size) * size).alias("__start"))
            .group_by(["__start", *keys], maintain_order=True)
            .agg(pl.col("__lw"), pl.col("__offset"), *[pl.col(c) for c in self.value_columns])
        )
        groups: dict[tuple[int, int, tuple], GroupRows] = {}
        n_keys = len(keys)
        for row in grouped.iter_rows():
            start = row[0]
            local, offsets = row[1 + n_keys], row[2 + n_keys]
            values = dict(zip(self.value_columns, row[3 + n_keys:]))
            groups[(start, start + size, tuple(row[1:1 + n_keys]))] = GroupRows(local, values, offsets, None)
        return groups

    def _group_each(self, passing: pl.DataFrame) -> dict[tuple[int, int, tuple], GroupRows]:
        """Several windows per row (HOP, CUMULATE): rows go to each of them;
        only a row's last window may route it to the late output."""
        groups: dict[tuple[int, int, tuple], GroupRows] = {}
        key_columns = [passing.get_column(c).to_list() for c in self.plan.group_by]
        value_columns = {c: passing.get_column(c).to_list() for c in self.value_columns}
        for j, (ts, local, offset) in enumerate(zip(passing["__ts"].to_list(), passing["__lw"].to_list(), passing["__offset"].to_list())):
            key = tuple(col[j] for col in key_columns)
            windows = self.window.windows_of(ts)
            last = len(windows) - 1
            for w, (start, end) in enumerate(windows):
                group = groups.get((start, end, key))
                if group is None:
                    group = groups[(start, end, key)] = GroupRows(values={c: [] for c in value_columns})
                if w == last:
                    group.late_positions.append(len(group.local_watermarks))  # type: ignore[union-attr]
                    group.late_offsets.append(offset)
                group.local_watermarks.append(local)
                for c, col in value_columns.items():
                    group.values[c].append(col[j])
        return groups
