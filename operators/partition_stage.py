"""The per-partition half of the event-time engine (local aggregation).

One `PartitionStage` runs beside each input partition's reader: it decodes a
whole batch, dead-letters what cannot be used, applies the query's filter,
tracks the partition's watermark W_p, assigns windows and groups the rows by
(window, group key). The global half (`operators.window_engine`) only merges
these groups, so no per-event Python call crosses the dataflow.

The watermark rule (semantics.md): W_p = (largest event time read so far) -
delay, never decreasing, updated after each record, so a record is judged
against the W_p in force before it. `local_watermarks` keeps that value per
row; within a batch it is a running maximum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from config.pipeline import EngineSettings, StreamSpec
from config.sql.plan import Plan
from operators.records import GroupRows, KafkaOut, PartitionBatch, RawRecord

NO_WATERMARK = -(2**62)


@dataclass
class ReadBatch:
    """Records read from one partition in one go: their values, and a way to
    materialise any of them unchanged (cheap to skip for rows never routed)."""

    values: list[bytes | None]
    raw: Callable[[int], RawRecord]
    timestamps: Callable[[], list[int]] | None = None  # Kafka record timestamps, when event time comes from them

    @classmethod
    def of(cls, records: Sequence[RawRecord]) -> "ReadBatch":
        return cls([r.value for r in records], records.__getitem__, lambda: [r.timestamp_ms or 0 for r in records])


def dead_letter(record: RawRecord, reason: str, topic: str) -> KafkaOut:
    """The record unchanged, with headers saying why and where it came from."""
    headers = list(record.headers or [])
    headers += [
        ("x-dlq-reason", reason.encode()),
        ("x-source-topic", record.topic.encode()),
        ("x-source-partition", str(record.partition).encode()),
        ("x-source-offset", str(record.offset).encode()),
    ]
    if record.timestamp_ms is not None:
        headers.append(("x-source-timestamp", str(record.timestamp_ms).encode()))
    return KafkaOut(topic, record.key, record.value, headers)


class PartitionStage:
    """Decode, dead-letter, filter, watermark and group one partition's batches."""

    def __init__(
        self,
        plan: Plan,
        stream: StreamSpec,
        settings: EngineSettings,
        decoder: Any,
        source: str,
        partitions: tuple[str, ...],
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
        self.time_from_kafka = time_attr.source == "kafka-timestamp"
        self.delay = time_attr.watermark_delay_ms
        self.value_columns = tuple(dict.fromkeys(a.column for a in plan.aggregates if a.column))
        self.predicate = plan.predicate.polars() if plan.predicate else None
        # W_p and the largest event time seen, restored from the recovery store
        self.max_event_ms: int | None = state[1] if state else None
        self.watermark_ms: int = state[0] if state else NO_WATERMARK

    def snapshot(self) -> tuple[int, int | None]:
        return (self.watermark_ms, self.max_event_ms)

    def process(self, batch: ReadBatch, end_of_input: bool = False) -> tuple[PartitionBatch, list[KafkaOut]]:
        """One read batch in, the grouped rows and the dead letters out."""
        decoded = self.decoder.decode(batch.values)
        rejected = list(decoded.errors)  # (input position, reason)
        index = decoded.index
        columns = decoded.columns
        if self.time_from_kafka:
            stamps = batch.timestamps() if batch.timestamps else []
            event_times = [stamps[i] for i in index]
        else:
            event_times = columns[self.time_column]
        keep = list(range(len(index)))

        skew = self.settings.max_future_skew_ms
        if skew is not None and event_times:
            limit = int(self.clock() * 1000) + skew
            if max(event_times) > limit:
                future = [j for j in keep if event_times[j] > limit]
                rejected += [(index[j], f"future-timestamp: {event_times[j]} is more than {skew} ms ahead of now") for j in future]
                future_set = set(future)
                keep = [j for j in keep if j not in future_set]

        # The watermark before each kept row: a running maximum over the batch.
        delay = self.delay
        current = self.watermark_ms
        local = []
        largest = self.max_event_ms
        for j in keep:
            local.append(current)
            ts = event_times[j]
            if ts - delay > current:
                current = ts - delay
            if largest is None or ts > largest:
                largest = ts
        self.watermark_ms = current
        self.max_event_ms = largest

        rejected.sort()
        dead = [dead_letter(batch.raw(i), reason, self.dlq_topic) for i, reason in rejected]
        passing = self._apply_filter(decoded, keep)
        groups = self._group(passing, keep, local, index, event_times, columns, batch)
        return (
            PartitionBatch(
                source=self.source,
                partitions=self.partitions,
                records_in=len(batch.values),
                filtered=len(keep) - len(passing),
                dead_lettered=len(dead),
                watermark_ms=None if current == NO_WATERMARK else current,
                max_event_ms=largest,
                groups=groups,
                end_of_input=end_of_input,
            ),
            dead,
        )

    def _apply_filter(self, decoded: Any, keep: list[int]) -> list[int]:
        """Positions (into `keep`) of the rows the WHERE clause lets through."""
        if self.predicate is None or not keep:
            return list(range(len(keep)))
        mask = decoded.frame.select(self.predicate.fill_null(False)).to_series().to_list()
        return [k for k, j in enumerate(keep) if mask[j]]

    def _group(self, passing, keep, local, index, event_times, columns, batch: ReadBatch) -> dict[tuple[int, int, tuple], GroupRows]:
        groups: dict[tuple[int, int, tuple], GroupRows] = {}
        key_columns = [columns[c] for c in self.plan.group_by]
        value_columns = {c: columns[c] for c in self.value_columns}
        tumble = self.window.kind == "TUMBLE"
        size = self.window.size_ms
        for k in passing:
            j = keep[k]
            ts = event_times[j]
            key = tuple(col[j] for col in key_columns)
            windows = [(ts - ts % size, ts - ts % size + size)] if tumble else self.window.windows_of(ts)
            last = len(windows) - 1
            for w, (start, end) in enumerate(windows):
                group = groups.get((start, end, key))
                if group is None:
                    group = groups[(start, end, key)] = GroupRows(values={c: [] for c in value_columns})
                if w == last:
                    group.late_candidates.append((len(group.local_watermarks), batch.raw(index[j])))
                group.local_watermarks.append(local[k])
                for c, col in value_columns.items():
                    group.values[c].append(col[j])
        return groups

