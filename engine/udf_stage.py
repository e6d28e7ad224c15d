"""The SRP Processor's UDF stage as a dataflow step: Kafka records -> UDF -> output messages.

`UdfStage.process` is plain code (a list of `RawRecord` in, a list of
`AmqpMessage` / `KafkaOut` out) so it can be tested and reused without
Bytewax; `udf_step` is the thin Bytewax operator around it.

For each input record the stage calls the UDF (`connectors.udf_client`) with
Streaming Runtime's headers and turns the reply into:

- one output message per reply payload, to RabbitMQ (`AmqpMessage`: routing
  key from the record key, stable `message_id` from window and key) or to
  Kafka (`KafkaOut`: same key, reply headers), as the output Stream says;
- nothing, when the reply is empty (the UDF's "no output");
- a dead letter (`KafkaOut` to the input's dead-letter topic: the record
  unchanged, with the gRPC status in its headers) when the UDF refused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream

from runtime.metrics import UDF_CALLS
from engine.partition_stage import dead_letter
from connectors.rabbitmq import AmqpMessage, stable_message_id
from engine.records import KafkaOut, RawRecord
from connectors.udf_client import HeaderBuilder, UdfCall, UdfClient, UdfFailure, UdfOutput, UdfReply, decode_headers, key_text
from udf import headers as h


def routing_key(key: bytes | None, key_fields: Sequence[str] = ()) -> str:
    """The routing key of a message key: a JSON object key (Flink's `key.format=json`,
    e.g. `{"error_code":"C009"}`) gives its key fields' values joined by `.`
    (`C009`), so queues can bind by value; any other key is used as text."""
    text = key_text(key)
    if not text.startswith("{"):
        return text
    try:
        fields = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(fields, dict):
        return text
    names = [n for n in key_fields if n in fields] or list(fields)
    return ".".join("" if fields[n] is None else str(fields[n]) for n in names)


def message_id_for(record: RawRecord, call_headers: dict[str, str], output: UdfOutput, rkey: str) -> str:
    """Stable across replays: the window and key when the record is a window result,
    else the record's position in Kafka; plus the output's index in a multipart reply."""
    start, end = call_headers.get(h.WINDOW_START), call_headers.get(h.WINDOW_END)
    if start is not None and end is not None:
        return stable_message_id("window", start, end, rkey, output.index)
    return stable_message_id("record", record.topic, record.partition, record.offset, output.index)


@dataclass
class UdfStage:
    """Calls the UDF for a batch of records and shapes what comes back."""

    client: UdfClient | None  # None: no UDF (a broker bridge), records pass unchanged
    output_protocol: Literal["rabbitmq", "kafka"]
    output_topic: str  # Kafka topic when the output is Kafka (RabbitMQ: the sink knows its exchange)
    dlq_topic: str
    key_fields: tuple[str, ...] = ()
    header_builder: HeaderBuilder | None = None
    processor: str = "udf"

    def __post_init__(self) -> None:
        if self.header_builder is None:
            self.header_builder = HeaderBuilder()

    def calls_for(self, records: Sequence[RawRecord]) -> list[UdfCall]:
        return [
            self.header_builder.call_for(r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp_ms, ref=r)
            for r in records
        ]

    def process(self, records: Sequence[RawRecord]) -> list[AmqpMessage | KafkaOut]:
        """Output messages and dead letters for `records`, in input order."""
        out: list[AmqpMessage | KafkaOut] = []
        calls = self.calls_for(records)
        if self.client is None:
            results = [UdfReply(c, (UdfOutput(c.payload, decode_headers(c.ref.headers)),) if c.payload else ()) for c in calls]
        else:
            results = self.client.call_batch(calls)
        for result in results:
            record: RawRecord = result.call.ref
            if isinstance(result, UdfFailure):
                UDF_CALLS.labels(self.processor, result.code).inc()
                letter = dead_letter(record, "udf-error", self.dlq_topic)
                letter.headers.extend(kv for kv in result.reason_headers() if kv[0] != "x-dlq-reason")
                out.append(letter)
                continue
            UDF_CALLS.labels(self.processor, "OK" if result.outputs else "OK_EMPTY").inc()
            out.extend(self.outputs_for(record, result))
        return out

    def outputs_for(self, record: RawRecord, reply: UdfReply) -> Iterable[AmqpMessage | KafkaOut]:
        call_headers = dict(reply.call.headers)
        for output in reply.outputs:
            if self.output_protocol == "kafka":
                yield KafkaOut(self.output_topic, record.key, output.payload,
                               [(k, v.encode()) for k, v in output.headers.items()])
                continue
            rkey = routing_key(record.key, self.key_fields)
            yield AmqpMessage(
                routing_key=rkey,
                body=output.payload,
                message_id=message_id_for(record, call_headers, output, rkey),
                headers=dict(output.headers),
                content_type=output.headers.get(h.CONTENT_TYPE),
            )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def udf_step(step_id: str, up: Stream[RawRecord], stage: UdfStage) -> op.BranchOut:
    """Bytewax step: records in; `.trues` the output messages, `.falses` the dead letters
    (`KafkaOut` to the dead-letter topic). With a Kafka output both are `KafkaOut`;
    tell them apart by topic."""
    results: Stream[Any] = op.flat_map_batch(f"{step_id}_call", up, stage.process)
    if stage.output_protocol == "kafka":
        return op.branch(f"{step_id}_split", results, lambda m: m.topic != stage.dlq_topic)
    return op.branch(f"{step_id}_split", results, lambda m: isinstance(m, AmqpMessage))
