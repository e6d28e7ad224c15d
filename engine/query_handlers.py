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
from engine.metadata import MetadataColumns
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
    timestamps as `yyyy-MM-dd HH:mm:ss[.fff]` UTC.

    For an upsert-kafka Stream the key is the JSON object of its primary key
    columns, in the key's order, so a later row for the same key replaces the
    earlier one for a compacting consumer, and a retraction (`-D`) is a
    tombstone: that key with no value."""

    def __init__(self, plan: Plan, sink: StreamSpec):
        self.plan = plan
        self.topic = sink.topic
        names = [c.name for c in plan.projection]
        if sink.upsert:
            missing = [k for k in sink.primary_key if k not in names]
            if missing:
                raise ValueError(f"output stream {sink.name!r}: primary key column(s) {', '.join(missing)} are not written")
            self.key_fields = sink.primary_key
        else:
            self.key_fields = tuple(k for k in (sink.key_fields or sink.keys) if k in names)
        self.timestamps = {c.name: c.type for c in plan.projection if "timestamp" in c.type}
        if sink.value_format not in ("json", "raw"):
            raise ValueError(f"output stream {sink.name!r}: value format {sink.value_format!r} is not supported for query output; use json")

    def encode_row(self, row: dict[str, Any], headers: list[tuple[str, bytes]] | None = None) -> KafkaOut:
        key = encode_json_key(self.key_fields, row, self.timestamps) if self.key_fields else None
        return KafkaOut(self.topic, key, encode_json_value(self.plan.projection, row), headers or [])

    def encode_delete(self, row: dict[str, Any]) -> KafkaOut:
        """The tombstone that retracts `row` from an upsert-kafka Stream: its key, no value."""
        return KafkaOut(self.topic, encode_json_key(self.key_fields, row, self.timestamps), None, [])

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
        # Kafka metadata and processing-time columns it selects or filters on (`SELECT *` has them all, as in Flink)
        self.metadata = MetadataColumns.of(stream, plan.columns_needed)

    def handle(self, batch: RecordBatch, end_of_input: bool, caught_up: bool) -> list[RowsOutput]:
        try:
            decoded = self.decoder.decode(batch.values)
        except SchemaRegistryUnavailable as exc:
            raise RetryLater(str(exc)) from None
        errors = list(decoded.errors)
        if not decoded.index:
            return [RowsOutput([], self._dead(batch, errors))] if errors else []
        frame, unreadable = self.metadata.add(decoded.frame, batch, decoded.index, self.source)
        frame = frame.with_columns(pl.Series("__pos", decoded.index, dtype=pl.Int64))
        if unreadable:
            errors = sorted(errors + unreadable)
            frame = frame.filter(~pl.col("__pos").is_in([pos for pos, _ in unreadable]))
        dead = self._dead(batch, errors)
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

    def _dead(self, batch: RecordBatch, errors: list[tuple[int, str]]) -> list[KafkaOut]:
        return [dead_letter(batch.record(i), reason, self.dlq_topic) for i, reason in errors]

    def snapshot(self) -> None:
        return None
