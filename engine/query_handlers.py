"""Per-partition handlers that `KafkaBatchSource` runs beside each reader,
and the encoders of what a query emits.

`WindowedHandler` feeds the event-time engine (`PartitionStage`);
`StatelessHandler` runs the filter/projection form of a query to the end,
since it needs no global state.
"""

from __future__ import annotations

from typing import Any

from config.pipeline import EngineSettings, StreamSpec
from config.sql.plan import Plan
from connectors.kafka_readers import read_batch
from connectors.kafka_source import RetryLater
from engine.partition_stage import NO_WATERMARK, PartitionStage, dead_letter
from engine.records import KafkaOut, PartitionBatch, WindowResult
from engine.serde import SchemaRegistryUnavailable, encode_json_key, encode_json_value
from engine.window_engine import result_row


class WindowedHandler:
    """One input partition of a windowed query: emits (PartitionBatch, dead letters)."""

    def __init__(self, plan: Plan, stream: StreamSpec, settings: EngineSettings, decoder: Any,
                 source: str, partitions: tuple[str, ...], dlq_topic: str, state: Any):
        self.stage = PartitionStage(plan, stream, settings, decoder, source, partitions, dlq_topic, state)

    def handle(self, records: Any, end_of_input: bool) -> list[tuple[PartitionBatch, list[KafkaOut]]]:
        try:
            return [self.stage.process(read_batch(records), end_of_input)]
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
        self.timestamps = frozenset(c.name for c in plan.projection if "timestamp" in c.type)
        if sink.value_format not in ("json", "raw"):
            raise ValueError(f"output stream {sink.name!r}: value format {sink.value_format!r} is not supported for query output; use json")

    def encode_row(self, row: dict[str, Any], headers: list[tuple[str, bytes]] | None = None) -> KafkaOut:
        key = encode_json_key(self.key_fields, row, self.timestamps) if self.key_fields else None
        return KafkaOut(self.topic, key, encode_json_value(self.plan.projection, row), headers or [])

    def encode(self, result: WindowResult) -> KafkaOut:
        headers = [("windowStartTime", str(result.start_ms).encode()), ("windowEndTime", str(result.end_ms).encode())]
        return self.encode_row(result_row(self.plan, result), headers)


class StatelessHandler:
    """One input partition of `INSERT INTO .. SELECT .. FROM s [WHERE ..]`."""

    def __init__(self, plan: Plan, stream: StreamSpec, decoder: Any, encoder: ResultEncoder, dlq_topic: str):
        self.plan = plan
        self.decoder = decoder
        self.encoder = encoder
        self.dlq_topic = dlq_topic
        self.predicate = plan.predicate.polars() if plan.predicate else None

    def handle(self, records: Any, end_of_input: bool) -> list[KafkaOut]:
        batch = read_batch(records)
        try:
            decoded = self.decoder.decode(batch.values)
        except SchemaRegistryUnavailable as exc:
            raise RetryLater(str(exc)) from None
        out = [dead_letter(batch.raw(i), reason, self.dlq_topic) for i, reason in decoded.errors]
        if not decoded.index:
            return out
        frame = decoded.frame
        if self.predicate is not None:
            frame = frame.filter(self.predicate.fill_null(False))
        refs = [c.ref for c in self.plan.projection]
        names = [c.name for c in self.plan.projection]
        for values in frame.select(refs).iter_rows():
            out.append(self.encoder.encode_row(dict(zip(names, values))))
        return out

    def snapshot(self) -> None:
        return None
