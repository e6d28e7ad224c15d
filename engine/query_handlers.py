"""Per-partition handlers that the Kafka source runs beside each reader, and
the encoder of what a query emits.

`WindowedHandler` feeds the event-time engine (`PartitionStage`);
`StatelessHandler` runs the filter/projection form of a query to the end,
since it needs no global state. Both take a read's `RecordBatch` and give one
output object per read, whose fields are the streams it feeds.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from config.pipeline import EngineSettings, StreamSpec
from config.sql.plan import Plan
from engine.dead_letters import dead_letter
from engine.partition_stage import PartitionStage, offsets_of
from engine.records import (
    NO_WATERMARK,
    KafkaOut,
    PartitionId,
    QueryResult,
    RecordBatch,
    RetryLater,
    RowsOutput,
    WindowedOutput,
    WindowResult,
)
from engine.serde import SchemaRegistryUnavailable, encode_json_key, encode_json_value
from engine.window_engine import result_row


class WindowedHandler:
    """One input partition of a windowed query: one `WindowedOutput` per read."""

    def __init__(self, plan: Plan, stream: StreamSpec, settings: EngineSettings, decoder: Any,
                 source: PartitionId, partitions: tuple[PartitionId, ...], dlq_topic: str, state: Any):
        self.stage = PartitionStage(plan, stream, settings, decoder, source, partitions, dlq_topic, state)

    def handle(self, batch: RecordBatch, end_of_input: bool, caught_up: bool) -> list[WindowedOutput]:
        try:
            return [self.stage.process(batch, end_of_input, caught_up)]
        except SchemaRegistryUnavailable as exc:
            raise RetryLater(str(exc)) from None

    def snapshot(self) -> Any:
        return self.stage.snapshot()

    def watermark(self) -> int | None:
        """The partition's watermark W_p, for event-time alignment of reads."""
        return None if self.stage.watermark_ms == NO_WATERMARK else self.stage.watermark_ms


class ResultEncoder:
    """Query output rows in the output Stream's JSON format (the seed's):
    key = JSON object of the key fields, value = every selected column,
    timestamps as `yyyy-MM-dd HH:mm:ss[.fff]` UTC."""

    def __init__(self, plan: Plan, sink: StreamSpec):
        self.plan = plan
        self.topic = sink.topic
        names = [c.name for c in plan.projection]
        self.key_fields = tuple(k for k in (sink.key_fields or sink.keys) if k in names)
        self.timestamps = {c.name: c.type for c in plan.projection if "timestamp" in c.type}
        if sink.value_format not in ("json", "raw"):
            raise ValueError(f"output stream {sink.name!r}: value format {sink.value_format!r} is not supported for query output; use json")

    def encode_row(self, row: dict[str, Any], headers: list[tuple[str, bytes]] | None = None) -> KafkaOut:
        key = encode_json_key(self.key_fields, row, self.timestamps) if self.key_fields else None
        return KafkaOut(self.topic, key, encode_json_value(self.plan.projection, row), headers or [])

    def encode(self, result: WindowResult) -> QueryResult:
        """A fired window's row; its identity is the window and the whole group key."""
        headers = [("windowStartTime", str(result.start_ms).encode()), ("windowEndTime", str(result.end_ms).encode())]
        out = self.encode_row(result_row(self.plan, result), headers)
        return QueryResult(out, (result.start_ms, result.end_ms), ("window", result.start_ms, result.end_ms, *result.key))


class StatelessHandler:
    """One input partition of `INSERT INTO .. SELECT .. FROM s [WHERE ..]`: one `RowsOutput` per read."""

    def __init__(self, plan: Plan, stream: StreamSpec, decoder: Any, encoder: ResultEncoder, dlq_topic: str,
                 source: PartitionId):
        self.plan = plan
        self.decoder = decoder
        self.encoder = encoder
        self.dlq_topic = dlq_topic
        self.source = source
        self.predicate = plan.predicate.polars() if plan.predicate else None

    def handle(self, batch: RecordBatch, end_of_input: bool, caught_up: bool) -> list[RowsOutput]:
        try:
            decoded = self.decoder.decode(batch.values)
        except SchemaRegistryUnavailable as exc:
            raise RetryLater(str(exc)) from None
        dead = [dead_letter(batch.record(i), reason, self.dlq_topic) for i, reason in decoded.errors]
        if not decoded.index:
            return [RowsOutput([], dead)] if dead else []
        frame = decoded.frame.with_columns(pl.Series("__pos", decoded.index, dtype=pl.Int64))
        if self.predicate is not None:
            frame = frame.filter(self.predicate.fill_null(False))
        names = [c.name for c in self.plan.projection]
        offsets = offsets_of(batch, frame["__pos"].to_list()).to_list()
        topic, partition = self.source
        results = [
            QueryResult(self.encoder.encode_row(dict(zip(names, values))), None, ("row", topic, partition, offset))
            for values, offset in zip(frame.select([c.ref for c in self.plan.projection]).iter_rows(), offsets)
        ]
        return [RowsOutput(results, dead)]

    def snapshot(self) -> None:
        return None
